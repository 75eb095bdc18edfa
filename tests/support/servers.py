"""Real processes for tests: throwaway redis-servers, the product's own commands and `web`
servers (uvicorn subprocesses on loopback ports, or one in the test's event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.http.serving import options
from tests.support.polling import eventually

ROOT = Path(__file__).resolve().parents[2]
ANALYTICS = str(Path(sys.executable).with_name("analytics"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


DEPLOY = ROOT / "deploy"
REDIS_CONF = DEPLOY / "redis.conf"  # production's settings: AOF, appendfsync everysec
REDIS_CLUSTER_CONF = DEPLOY / "redis-cluster.conf"


def redis_config(*files: Path, **overrides: str) -> str:
    """The directives of these redis.conf files, in order, with `overrides` (directive names
    with `_` for `-`) replacing any line of the same directive: a test's redis-server keeps
    the production settings and changes only where it listens, its `dir` and its log."""
    replaced = {name.replace("_", "-") for name in overrides}
    lines = []
    for file in files:
        for line in file.read_text().splitlines():
            words = line.split()
            if words and not words[0].startswith("#") and words[0].lower() not in replaced:
                lines.append(line)
    lines += [f"{name.replace('_', '-')} {value}" for name, value in overrides.items()]
    return "\n".join(lines) + "\n"


class RedisServer:
    """A redis-server of the test's own on a loopback port; stop() and start() simulate outages.

    Without `config` it keeps nothing across a restart. With `config` (redis.conf files,
    e.g. `(REDIS_CONF,)`) it runs those settings, listening on its own port and keeping its
    files in its own directory, so stop() (a SIGKILL) and start() are a crash and a restart
    that loads what was persisted; `overrides` change more directives (`appendonly="no"`).
    """

    def __init__(self, port: int | None = None, config: tuple[Path, ...] = (),
                 **overrides: str) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="analytics-redis-")
        self.config = config
        self.overrides = overrides
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> str:
        with contextlib.suppress(OSError):
            return Path(self.dir, "redis.log").read_text(errors="replace")
        return ""

    def command(self) -> list[str]:
        server = shutil.which("redis-server") or "redis-server"
        if not self.config:
            return [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", self.dir]
        path = Path(self.dir, "redis.conf")
        path.write_text(redis_config(
            *self.config, port=str(self.port), bind="127.0.0.1", dir=self.dir,
            logfile=str(Path(self.dir, "redis.log")), **self.overrides))
        return [server, str(path)]

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        """SIGKILL: a crash, with no chance to write anything more."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def env_for(settings, **extra) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.secret_key,
        "ANALYTICS_KEY_PREFIX": settings.key_prefix,
        "RATE_LIMIT_PER_MINUTE": str(settings.rate_limit_per_minute),
        "RATE_LIMIT_PER_ADDRESS_PER_MINUTE": str(settings.rate_limit_per_address_per_minute),
        "FLUSH_INTERVAL_SECONDS": str(settings.flush_interval_seconds),
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(settings, *args: str, input: str | None = None, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYTICS, *args], env=env_for(settings, **extra), cwd=ROOT,
                          capture_output=True, text=True, input=input, timeout=120)


def start_process(settings, *args: str, **extra) -> subprocess.Popen:
    return subprocess.Popen([ANALYTICS, *args], env=env_for(settings, **extra), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@dataclass
class WebServer:
    process: subprocess.Popen
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


async def wait_ready(url: str, process: subprocess.Popen | None = None,
                     timeout: float = 20) -> None:
    """Waits until `url`/readyz answers 200; fails at once should `process` exit first."""
    async with httpx.AsyncClient() as http:
        async def ready() -> bool:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                return (await http.get(f"{url}/readyz", timeout=1)).status_code == 200
            return False

        await eventually(ready, timeout, interval=0.1, what=f"{url}/readyz answering 200")


def serve_command(asgi: str = "app.asgi:app") -> list[str]:
    """`asgi` served as `analytics serve` serves the product, on loopback (app/http/serving.py);
    the port and the workers from the environment (PORT, WEB_CONCURRENCY)."""
    return [sys.executable, "-m", "app.http.serving", asgi, "--log-level", "warning"]


@contextlib.asynccontextmanager
async def web_server(settings, asgi: str = "app.asgi:app", **extra) -> AsyncIterator[WebServer]:
    """A `web` process of this run's settings on a free loopback port, stopped on exit;
    `asgi` names another app to serve (the product's plus test routes)."""
    port = free_port()
    process = subprocess.Popen(serve_command(asgi), cwd=ROOT,
                               env=env_for(settings, PORT=port, WEB_CONCURRENCY=1, **extra))
    try:
        await wait_ready(f"http://127.0.0.1:{port}", process)
        yield WebServer(process, port)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.asynccontextmanager
async def in_process_server(app, sock: socket.socket) -> AsyncIterator[None]:
    """Serves `app` (the product's, of `create_app`) with uvicorn in this event loop, as
    `analytics serve` would, so a test can look inside the app."""
    import uvicorn

    config = uvicorn.Config(app, **{**options(app.extensions["settings"]), "lifespan": "on",
                                    "log_config": None, "log_level": "warning"})
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))

    def started() -> bool:
        if task.done():
            task.result()  # its failure, if it failed
        return server.started

    try:
        await eventually(started, 20, what="uvicorn serving")
        yield
    finally:
        server.should_exit = True
        await task


def postgres_binary(name: str) -> str | None:
    """A PostgreSQL server program (`initdb`, `pg_ctl`): on PATH, or Debian's newest."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0)
    return str(candidates[-1]) if candidates else None


class PostgresServer:
    """A PostgreSQL cluster of the test's own on a loopback port; stop() and start() simulate
    outages. Never the machine's shared server, which other runs use at the same time.

    initdb runs once, on the first start(); the data directory survives stop() and start(), and
    close() removes it. Postgres refuses to run as root, so as root every server program runs
    as the `postgres` user, which then owns the directory.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="analytics-postgres-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as_owner = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        done = subprocess.run([*self._as_owner, *command], capture_output=True, text=True,
                              timeout=timeout, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): "
                               f"{done.stdout}{done.stderr}{self.server_log()}")
        return done

    def server_log(self) -> str:
        with contextlib.suppress(OSError):
            return Path(self.log).read_text(errors="replace")
        return ""

    def start(self) -> PostgresServer:
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._run(postgres_binary("initdb") or "initdb", "-D", self.data, "-U", "postgres",
                      "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
        # Its own socket directory: the shared server's may not be writable, or be in use.
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.dir} -c fsync=off -c max_connections=100")
        self._run(postgres_binary("pg_ctl") or "pg_ctl", "-D", self.data, "-l", self.log,
                  "-o", options, "-w", "-t", "60", "start", timeout=90)
        wait_for_port(self.port)
        return self

    @property
    def running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def stop(self, mode: str = "fast") -> None:
        """`fast` disconnects every client and shuts down cleanly; `immediate` is a crash."""
        if self.running:
            self._run(postgres_binary("pg_ctl") or "pg_ctl", "-D", self.data, "-m", mode, "-w",
                      "-t", "60", "stop", timeout=90)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
