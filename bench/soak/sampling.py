"""What the soak samples while the load runs: resident memory and CPU time of every process of
the service (and of the clients and this database's Postgres backends), the machine's busy
time, the events waiting in the streams, Redis memory; and Redis's slow log at the end."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path

import asyncpg

from bench.soak.dashboards import Dashboard
from bench.stack import ROOT, Stack, children, cmdline, cpu_seconds, rss_mb
from realtime.keys import SHARDS, Keys
from tests.support.servers import RedisServer


class Processes:
    """The pids under test, labelled; web workers are looked up again at every sample."""

    def __init__(self, stack: Stack, redis: RedisServer | None, conn: asyncpg.Connection) -> None:
        self.stack, self.redis, self.conn = stack, redis, conn
        self.worker_pids: list[list[int]] = []

    def current(self) -> dict[str, int]:
        web = self.stack.processes["web"].pid
        labelled = {"web supervisor": web}
        workers = []
        for pid in children(web):
            line = cmdline(pid)
            if "resource_tracker" in line:
                labelled["web resource tracker"] = pid
            else:
                workers.append(pid)
        for n, pid in enumerate(sorted(workers), 1):
            labelled[f"web worker {n}"] = pid
        self.worker_pids.append(sorted(workers))
        labelled["scheduler"] = self.stack.processes["scheduler"].pid
        if self.redis is not None and self.redis.process is not None:
            labelled["redis-server"] = self.redis.process.pid
        return labelled


async def sample(t: float, procs: Processes, redis, keys: Keys, dashboards: list[Dashboard],
                 private_redis: bool, clients: dict[str, int]) -> dict:
    pids = procs.current()
    backends = []
    with contextlib.suppress(Exception):  # the Postgres backends serving this run's database
        backends = [r["pid"] for r in await procs.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            procs.stack.db)]
    busy, total = system_cpu()
    row = {"t": round(t, 1),
           "rss_mb": {label: round(rss_mb(pid), 1) for label, pid in pids.items()},
           "cpu_s": {label: round(cpu_seconds(pid), 2) for label, pid in pids.items()},
           "client_cpu_s": {label: round(cpu_seconds(pid), 2) for label, pid in clients.items()},
           "system_jiffies": [busy, total],
           "postgres_cpu_s": {str(pid): cpu_seconds(pid) for pid in backends},
           "pids": pids}
    try:
        row["stream_backlog"] = await backlog(redis, keys)
        if private_redis:
            info = await redis.info("memory")
            row["redis_used_memory_mb"] = round(info["used_memory"] / 2**20, 1)
    except Exception as error:  # a sample must never end the soak
        row["redis_error"] = repr(error)
    row["sockets_open"] = sum(1 for d in dashboards if d.open)
    row["updates_so_far"] = sum(d.frames["update"] for d in dashboards)
    return row


async def backlog(redis, keys: Keys) -> int:
    """Raw events waiting in the streams (every shard)."""
    pipe = redis.pipeline(transaction=False)
    for shard in range(SHARDS):
        pipe.xlen(keys.events(shard))
    return sum(await pipe.execute())


async def backlog_series(redis, keys: Keys, t0: float, every: float,
                         into: list[tuple[float, int]]) -> None:
    """Appends (seconds since `t0` on the loop's clock, backlog) every `every` seconds until
    cancelled: the series the backlog is judged on (bench.soak.checking.backlog_trend)."""
    loop = asyncio.get_running_loop()
    k = 0
    while True:
        with contextlib.suppress(Exception):  # a missed sample must never end the soak
            into.append((round(loop.time() - t0, 2), await backlog(redis, keys)))
        k += 1
        await asyncio.sleep(max(0.0, t0 + k * every - loop.time()))


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def script_names() -> dict[str, str]:
    folder = ROOT / "realtime" / "scripts"
    return {hashlib.sha1(path.read_bytes()).hexdigest(): path.stem for path in folder.glob("*.lua")}


async def slowlog(redis, t0_wall: float) -> dict:
    """Redis commands slower than 10 ms during the load (private Redis only): what blocked it."""
    names = script_names()
    entries = await redis.slowlog_get(100_000)
    by_command: dict[str, dict] = {}
    longest = []
    for entry in entries:
        args = [a.decode(errors="replace") if isinstance(a, bytes) else str(a)
                for a in entry["command"].split()[:2]] \
            if isinstance(entry["command"], (bytes, str)) else []
        name = args[0].upper() if args else "?"
        if name in ("EVALSHA", "EVALSHA_RO") and len(args) > 1:
            name = f"EVALSHA {names.get(args[1].lower(), args[1][:8])}"
        row = by_command.setdefault(name, {"count": 0, "max_ms": 0.0, "total_ms": 0.0})
        ms = entry["duration"] / 1000
        row["count"] += 1
        row["max_ms"] = round(max(row["max_ms"], ms), 1)
        row["total_ms"] = round(row["total_ms"] + ms, 1)
        longest.append({"t": round(entry["start_time"] - t0_wall), "command": name,
                        "ms": round(ms, 1)})
    longest.sort(key=lambda e: -e["ms"])
    return {"over_10ms": len(entries), "longest": longest[:8],
            "by_command": dict(sorted(by_command.items(), key=lambda kv: -kv[1]["total_ms"]))}
