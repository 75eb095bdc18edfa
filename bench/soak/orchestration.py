"""One soak, step by step: start the processes, pick the rate, take the baseline, open the
dashboards, run the load while sampling, wait for the flush, then check and report."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from app.accounts.tokens import create_token
from bench.soak import peak
from bench.soak.checking import (
    Checked,
    backlog_trend,
    compare,
    dashboards_behind,
    rollup_sums,
    settle,
    today_numbers,
    verdict,
)
from bench.soak.dashboards import Dashboard
from bench.soak.reporting import (
    cpu_report,
    live_section,
    load_section,
    log,
    log_problems,
    memory_report,
    progress,
    rollups_section,
    without_raw_counters,
    write,
)
from bench.soak.sampling import Processes, backlog_series, sample, slowlog
from bench.stack import RESULTS, ROOT, Stack
from realtime.keys import Keys
from tests.support.servers import RedisServer

BACKLOG_EVERY = 1.0  # seconds between the backlog samples judged by backlog_trend

@dataclass
class Soak:
    """One run's processes, clients, tenants and dashboards."""

    args: argparse.Namespace
    stack: Stack
    redis_server: RedisServer | None  # None: the shared Redis of REDIS_URL
    redis: Redis
    keys: Keys
    logs: Path
    conn: asyncpg.Connection | None = None
    hot: list[int] = field(default_factory=list)  # the dashboards' tenants
    tokens: dict[int, str] = field(default_factory=dict)
    dashboards: list[Dashboard] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.stack.url("web")

    @property
    def flush_interval(self) -> float:
        return float(self.stack.env["FLUSH_INTERVAL_SECONDS"])

    def sample(self, procs: Processes, t: float, clients: dict[str, int]):
        return sample(t, procs, self.redis, self.keys, self.dashboards,
                      self.redis_server is not None, clients)


@dataclass(frozen=True)
class Rate:
    per_second: float | None  # None: --peak, as fast as the service answers
    source: str
    peak: float | None  # None when given with --rate; with --peak, make bench's if recorded


@dataclass
class Loaded:
    """What the load left: the generator's last line and windows, the samples taken meanwhile."""

    final: dict
    windows: list[dict]
    samples: list[dict]
    procs: Processes
    t0: float  # the event loop's time at the start
    end: float  # seconds from t0 to the generator's exit
    day0: tuple[int, int, int]  # the UTC day at the start: the tenants' days are UTC days
    updates: list[int]  # updates each dashboard got during the load
    redis_slow: dict | None  # private Redis only
    backlog: list[tuple[float, int]]  # (seconds from t0, raw events in the streams)


async def soak(args: argparse.Namespace) -> int:
    """The whole run; 0 when every check of the verdict holds."""
    workers = os.cpu_count() or 1
    redis_server = None if args.shared_redis else RedisServer().start()
    logs = Path(tempfile.mkdtemp(prefix="analytics-soak-"))
    stack = Stack(workers, redis_url=redis_server.url if redis_server else None, logs=logs)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    run = Soak(args, stack, redis_server,
               Redis.from_url(stack.env.get("REDIS_URL", "redis://127.0.0.1:6379/0")),
               Keys(stack.env["ANALYTICS_KEY_PREFIX"]), logs)
    try:
        await start(run, workers)
        rate = choose_rate(run)
        base, base_today = await baseline(run, rate)
        await open_dashboards(run)
        loaded = await load(run, rate)
        checked, after = await wait_and_check(run, loaded, base, base_today)
        await close_dashboards(run)
        results = report(run, started, workers, rate, loaded, after, checked)
        return 0 if all(results["verdict"].values()) else 1
    finally:
        await close_dashboards(run)
        if run.conn is not None:
            await run.conn.close()
        await run.redis.aclose()
        await stack.teardown()
        if redis_server is not None:
            redis_server.close()


async def start(run: Soak, workers: int) -> None:
    """The Stack's processes and tenants, and a token for each tenant the dashboards watch."""
    redis = (f"private redis-server on port {run.redis_server.port}" if run.redis_server
             else "shared Redis")
    log(f"starting web ({workers} workers), scheduler, {redis}; {run.args.tenants} tenants")
    await run.stack.setup(run.args.tenants, bare=False)
    run.conn = await asyncpg.connect(run.stack.env["DATABASE_URL"])
    run.hot = [run.stack.first_tenant + i for i in range(run.args.socket_tenants)]
    run.tokens = {t: (await create_token(run.conn, t, label="soak"))[1] for t in run.hot}


def choose_rate(run: Soak) -> Rate:
    """--peak, else --rate, else half the recorded peak, else half a short wrk run."""
    args = run.args
    if args.peak:
        rate = Rate(None, "--peak: wrk closed loop", recorded_peak())
        log("rate: the peak, wrk closed loop"
            + (f" (make bench's peak: {rate.peak:.0f}/s)" if rate.peak else ""))
        return rate
    if args.rate:
        rate = Rate(args.rate, "--rate", None)
    else:
        peak = None if args.measure_peak else recorded_peak()
        source = "bench/results/latest.json ingest_c32.track.rps"
        if peak is None:
            log(f"measuring the peak: wrk c=32 for {args.peak_seconds} s")
            peak = run.stack.peak_rps(args.peak_seconds)
            source = f"wrk c=32, {args.peak_seconds} s, this run"
        rate = Rate(round(peak / 2, 1), source, peak)
    log(f"rate {rate.per_second} req/s ("
        + (f"half of peak {rate.peak:.0f} from {rate.source}" if rate.peak else rate.source) + ")")
    return rate


def recorded_peak() -> float | None:
    try:
        results = json.loads((RESULTS / "latest.json").read_text())
        return float(results["ingest_c32"]["track"]["rps"])
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return None


async def baseline(run: Soak, rate: Rate) -> tuple[dict, dict[int, dict]]:
    """The rollups and the watched tenants' /today before the load."""
    # Whatever happened before the load (a wrk run) is flushed, then taken as the baseline.
    if rate.source.startswith("wrk"):
        log("waiting for the scheduler to flush the wrk run")
        nothing = {"total": {"events": 0}, "raw_events": 0}
        base, _ = await settle(run.conn, run.redis, run.keys, run.hot, nothing, None, 120,
                               quiet=2 * run.flush_interval)
    else:
        base = await rollup_sums(run.conn, run.hot)
    return base, await today_numbers(run.base_url, run.tokens)


async def open_dashboards(run: Soak) -> None:
    """SOCKETS dashboards spread over the watched tenants, 25 connecting at a time."""
    log(f"connecting {run.args.sockets} dashboards over {len(run.hot)} tenants")
    ws_base = run.base_url.replace("http://", "ws://")
    for i in range(run.args.sockets):
        tenant = run.hot[i % len(run.hot)]
        run.dashboards.append(
            Dashboard(f"{ws_base}/api/analytics/{tenant}/live", run.tokens[tenant], tenant))
    for start in range(0, len(run.dashboards), 25):
        batch = run.dashboards[start:start + 25]
        run.tasks += [asyncio.create_task(d.run()) for d in batch]
        await asyncio.wait_for(asyncio.gather(*(d.connected.wait() for d in batch)), 60)
    for d in run.dashboards:
        d.counting = True
        d.last_at = time.monotonic()


async def close_dashboards(run: Soak) -> None:
    for d in run.dashboards:
        d.stopping = True
    for task in run.tasks:
        task.cancel()
    await asyncio.gather(*run.tasks, return_exceptions=True)


async def load(run: Soak, rate: Rate) -> Loaded:
    """The load for the duration, bench/loadgen.py at `rate` or wrk at the peak (--peak),
    with a sample every SAMPLE_EVERY seconds and the streams' backlog every second."""
    args, stack = run.args, run.stack
    procs = Processes(stack, run.redis_server, run.conn)
    clients = {"dashboards (this process)": os.getpid()}
    loop = asyncio.get_running_loop()
    if run.redis_server is not None:
        await run.redis.config_set("slowlog-log-slower-than", 10_000)
        await run.redis.config_set("slowlog-max-len", 100_000)
        await run.redis.slowlog_reset()
    t0, t0_wall = loop.time(), time.time()
    updates_at_start = [d.frames["update"] for d in run.dashboards]
    backlog: list[tuple[float, int]] = []
    tracker = asyncio.create_task(backlog_series(run.redis, run.keys, t0, BACKLOG_EVERY, backlog))
    try:
        if args.peak:
            final, windows, samples = await peak.drive(
                run.base_url, args, stack.first_tenant, run.hot, t0,
                lambda t: run.sample(procs, t, clients), clients)
        else:
            final, windows, samples = await open_loop(run, rate, procs, clients, t0)
    finally:
        tracker.cancel()
        await asyncio.gather(tracker, return_exceptions=True)
    end = loop.time() - t0
    redis_slow = await slowlog(run.redis, t0_wall) if run.redis_server is not None else None
    for d in run.dashboards:
        d.counting = False
    updates = [d.frames["update"] - n
               for d, n in zip(run.dashboards, updates_at_start, strict=True)]
    log(f"load done: {final['answered']} answered in {final['seconds_until_last_answer']} s "
        f"({final['achieved_rate']}/s), {final['accepted']} accepted; waiting for the flush")
    return Loaded(final, windows, samples, procs, t0, end, time.gmtime(t0_wall)[:3], updates,
                  redis_slow, backlog)


async def open_loop(run: Soak, rate: Rate, procs: Processes, clients: dict[str, int],
                    t0: float) -> tuple[dict, list[dict], list[dict]]:
    """bench/loadgen.py at `rate`, with a sample at each window it reports."""
    args, stack = run.args, run.stack
    loop = asyncio.get_running_loop()
    argv = [sys.executable, "-m", "bench.loadgen", "--url", run.base_url,
            "--rate", str(rate.per_second), "--duration", str(args.duration),
            "--connections", str(args.connections), "--tenants", str(args.tenants),
            "--first-tenant", str(stack.first_tenant), "--hot-tenants", ",".join(map(str, run.hot)),
            "--hot-share", str(args.hot_share), "--report-every", str(args.sample_every)]
    log(f"load for {args.duration:.0f} s: {' '.join(argv[1:])}")
    samples = [await run.sample(procs, loop.time() - t0, clients)]
    gen = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    clients["load generator"] = gen.pid
    windows: list[dict] = []
    final: dict | None = None
    async for raw in gen.stdout:
        line = json.loads(raw)
        if line["type"] != "window":
            final = line
            continue
        windows.append(line)
        samples.append(await run.sample(procs, loop.time() - t0, clients))
        log(progress(line, samples[-1], samples[0]["updates_so_far"]))
    await gen.wait()
    end = loop.time() - t0
    if samples[-1]["t"] < min(end, args.duration) - 2:
        samples.append(await run.sample(procs, min(end, args.duration), clients))
    if final is None:
        raise RuntimeError(f"the load generator exited with {gen.returncode} and no result")
    return final, windows, samples


async def wait_and_check(run: Soak, loaded: Loaded, base: dict,
                         base_today: dict[int, dict]) -> tuple[Checked, dict]:
    """Waits for the dashboards to show, and the scheduler to flush, what was accepted; what
    they and /today show then, and a sample taken once it has settled."""
    hot_accepted = {int(t): c for t, c in loaded.final["accepted_hot"].items()}
    behind = await dashboards_behind(run.dashboards, hot_accepted)
    # The scheduler drains and flushes on its own interval.
    sums, settle_s = await settle(run.conn, run.redis, run.keys, run.hot, base,
                                  loaded.final["accepted"], run.args.settle_timeout,
                                  quiet=3 * run.flush_interval)
    after = await run.sample(loaded.procs, asyncio.get_running_loop().time() - loaded.t0, {})
    today = await today_numbers(run.base_url, run.tokens)
    # Across a UTC midnight the live numbers and /today start again from zero: those two
    # checks are then skipped (the rollups still hold every day).
    same_day = time.gmtime()[:3] == loaded.day0
    if not same_day:
        log("the UTC day changed during the run: live and /today checks skipped")
    checked = compare(loaded.final, base, sums, base_today, today, run.hot, behind, settle_s,
                      same_day)
    return checked, after


def report(run: Soak, started: str, workers: int, rate: Rate, loaded: Loaded, after: dict,
           checked: Checked) -> dict:
    """bench/results/soak.json (or --out), the summary and the tables for the docs."""
    args, final = run.args, loaded.final
    memory = memory_report(loaded.samples, after, min(loaded.end, args.duration), args.flat_mb)
    cpu = cpu_report(loaded.samples, final)
    load_length = min(loaded.end, args.duration)
    trend = backlog_trend(loaded.backlog, load_length, final["accepted_rate"], run.flush_interval)
    results = {
        "started": started,
        "machine": {"cores": os.cpu_count(), "web_workers": workers},
        "settings": {
            "mode": "peak (wrk, closed loop)" if args.peak else "open loop (bench/loadgen.py)",
            "duration_s": args.duration, "target_rate": rate.per_second,
            "rate_source": rate.source, "peak_rps": rate.peak, "sockets": args.sockets,
            "socket_tenants": len(run.hot), "hot_share": args.hot_share,
            "tenants": args.tenants, "connections": args.connections,
            "sample_every_s": args.sample_every,
            "redis": "private redis-server" if run.redis_server else "shared (REDIS_URL)",
            "flush_interval_s": run.flush_interval, "flat_mb": args.flat_mb,
        },
        "load": load_section(final, loaded.windows, rate.per_second, rate.peak),
        "stream_backlog": trend | {
            "every_s": BACKLOG_EVERY,
            "series": [[round(t), b] for t, b in loaded.backlog]},
        "rollups": rollups_section(checked),
        "live": live_section(run.dashboards, len(run.hot), loaded.updates, final, checked),
        "memory": memory,
        "redis_slowlog": loaded.redis_slow,
        "cpu": cpu,
        "per_second": {"answered": final["answered_by_second"],
                       "backlog": final["backlog_by_second"]},
        "worker_pids_changed": len({tuple(p) for p in loaded.procs.worker_pids}) > 1,
        "windows": [{k: w[k] for k in ("t", "rate", "accepted", "backlog", "errors", "statuses")
                     if k in w}
                    | ({"p99_ms": w["latency_from_due"]["p99_ms"]} if "latency_from_due" in w
                       else {}) for w in loaded.windows],
        "samples": without_raw_counters(loaded.samples + [after | {"after_settle": True}]),
        "logs": log_problems(run.logs),
    }
    results["verdict"] = verdict(final, rate.per_second, checked, results["live"]["reconnects"],
                                 memory, trend)
    write(results, Path(args.out))
    return results
