"""What `make bench` and `make soak` share: the real processes under test and wrk.

`Stack` starts, in a database and Redis key prefix of its own, the Procfile's `web`
(`analytics serve`, production settings, rate limit and buffer bound raised), optionally a
bare Quart app on the same server settings, and the `scheduler`; `teardown()` stops them and
removes the database and the keys. Only loopback addresses are ever sent traffic.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from tests.support.servers import ROOT, free_port, serve_command, wait_for_port
from tests.support.settings import drop_database

BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
FLUSH_INTERVAL_SECONDS = 5  # the scheduler's passes, as the product's default


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       stdout=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        return shutil.which("wrk") or "wrk"
    sys.exit("bench: wrk is missing; install it (apt-get install wrk)")


def commit_of(code: Path = ROOT) -> str:
    """The commit a checkout is at, `-dirty` when it holds uncommitted changes ('' outside
    git): what a run measured."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=code,
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def analytics_command(code: Path, *args: str) -> list[str]:
    """The `analytics` command of a checkout's code (ROOT, or another commit's, run with this
    one's virtualenv from its own directory, with `code_env(code)`)."""
    if code == ROOT:
        return [str(BIN / "analytics"), *args]
    return [str(BIN / "python"), "-c",
            "import sys; from app.ops.cli import main; main(sys.argv[1:])", *args]


def code_env(code: Path) -> dict[str, str]:
    """The environment that puts a checkout's packages ahead of the editable install of this
    one (nothing for this one)."""
    return {} if code == ROOT else {"PYTHONPATH": str(code)}


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(wrk: str, url: str, script: Path, connections: int, seconds: int,
            env: dict[str, str]) -> dict:
    done = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, env={**os.environ, **env}, check=True,
    )
    if done.stderr.strip():  # a Lua error: wrk would go on sending plain GETs
        raise RuntimeError(f"wrk: {done.stderr.strip()}")
    out = done.stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "non_2xx": int(errors[1]) if errors else 0,
        "socket_errors": socket_errors[1] if socket_errors else "",
    }


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class Stack:
    """The processes under test and their private database and key prefix.

    `redis_url` points the processes at another Redis than REDIS_URL (the soak's own
    redis-server); `logs`, a directory, keeps each process's output there instead of
    discarding it; `code`, a checkout of another commit, runs its code instead of this
    one's (bench/compare.py), with this one's virtualenv.
    """

    def __init__(self, workers: int, redis_url: str | None = None,
                 logs: Path | None = None, code: Path = ROOT) -> None:
        run = secrets.token_hex(4)
        self.run = run
        self.db = f"analytics_bench_{run}"
        self.env = {
            **os.environ,
            "ANALYTICS_ENV": "production",
            # Required in production; the bench's clients send no Origin it would be held to.
            "PUBLIC_URL": "https://analytics.example.com",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{self.db}",
            "ANALYTICS_KEY_PREFIX": f"bench:{run}:",
            "RATE_LIMIT_PER_MINUTE": "1000000000",
            "STREAM_MAX_EVENTS": "100000000",
            "TRUSTED_PROXY_HOPS": "1",
            "WEB_CONCURRENCY": str(workers),
            "FLUSH_INTERVAL_SECONDS": str(FLUSH_INTERVAL_SECONDS),
        }
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.code = code
        self.env.update(code_env(code))
        self.workers = workers
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self._log_files: list = []

    def command(self, *args: str) -> list[str]:
        """The `analytics` command of the stack's code."""
        return analytics_command(self.code, *args)

    def analytics(self, *args: str) -> dict:
        out = subprocess.run(self.command(*args, "--json"), env=self.env, cwd=self.code,
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    def start(self, name: str, argv: list[str], port: int | None = None,
              cwd: Path | None = None, **extra: str) -> None:
        env = {**self.env, **extra}
        if port:
            env["PORT"] = str(port)
            self.ports[name] = port
        output = subprocess.DEVNULL
        if self.logs is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            output = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (closed in teardown)
            self._log_files.append(output)
        self.processes[name] = subprocess.Popen(argv, env=env, cwd=cwd or self.code,
                                                stdout=output,
                                                stderr=subprocess.STDOUT if self.logs else output)
        if port:
            wait_for_port(port, timeout=30)

    async def setup(self, tenants: int, bare: bool = True) -> None:
        self.tenants = tenants
        self.analytics("migrate")
        conn = await asyncpg.connect(self.env["DATABASE_URL"])
        await conn.execute(
            "INSERT INTO tenants (name) SELECT 'bench ' || g FROM generate_series(1, $1) g",
            tenants)
        self.first_tenant = await conn.fetchval("SELECT min(id) FROM tenants")
        await conn.close()
        self.token = self.analytics("token", "create", "--tenant", str(self.first_tenant))["token"]
        self.start("web", self.command("serve"), free_port())
        if bare:
            port = free_port()
            # Served as `analytics serve` serves the product (app/http/serving.py).
            self.start("bare", serve_command("bench.bare:app"), port)
        self.start("scheduler", self.command("scheduler"))
        time.sleep(2)  # let every worker finish its startup

    def track_env(self) -> dict[str, str]:
        """What bench/track.lua reads: the stack's tenants and the visitors to spread over."""
        return {"BENCH_TENANTS": str(self.tenants), "BENCH_FIRST_TENANT": str(self.first_tenant),
                "BENCH_VISITORS": "100000"}

    def peak_rps(self, seconds: int) -> float:
        """/track req/s of the stack's `web` at c=32 with bench/track.lua, as `make bench`
        measures it."""
        return run_wrk(ensure_wrk(), self.url("web"), ROOT / "bench" / "track.lua", 32,
                       seconds, self.track_env())["rps"]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def memory(self) -> dict:
        report = {}
        for name, process in self.processes.items():
            pids = [process.pid, *children(process.pid)]
            report[name] = {"processes": len(pids),
                            "rss_mb": round(sum(rss_mb(p) for p in pids), 1),
                            "per_process_mb": [round(rss_mb(p), 1) for p in pids]}
        return report

    async def teardown(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for output in self._log_files:
            output.close()
        from redis.asyncio import Redis

        redis = Redis.from_url(self.env.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        try:
            await drop_scratch(redis, self.env["ANALYTICS_KEY_PREFIX"] + "*",
                               self.env["DATABASE_URL"])
        finally:
            await redis.aclose()


async def drop_scratch(redis, pattern: str, database_url: str) -> None:
    """Deletes a bench run's Redis keys (those matching `pattern`, a thousand a call: a single
    Redis) and the database of `database_url`."""
    batch = [key async for key in redis.scan_iter(match=pattern, count=5000)]
    for i in range(0, len(batch), 1000):
        await redis.unlink(*batch[i:i + 1000])
    await drop_database(database_url)
