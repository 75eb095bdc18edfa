"""`make bench`: the real processes under load, measured as ratios within one run.

Starts, in a database and Redis key prefix of its own: the Procfile's `web` with production
settings (rate limit raised), a bare Quart app on the same server settings (the framework
floor), and then measures, interleaving what is compared, median of the rounds:

    ingest   /track over 10,000 tenants and 100,000 visitors vs the bare route, wrk at c=32,
             plus a concurrency sweep for the plot
    reads    the two GET endpoints at c=16; and GET summary against a bare Quart route that
             returns the same JSON, interleaved, on a stack of its own (bench/reads.py)
    flush    time and round trips for 1,000 / 10,000 / 100,000 changed tenant-days
    insights a 30-day /stats and breakdowns of a tenant at its rate limit all month, in
             process at c=8, with spans and from the days alone (bench/insights.py)
    live     500 sockets on 50 tenants while /track runs at half its peak (bench/live_load.py),
             every round, and the worst case of 500 sockets on one tenant (bench/live_latency.py)
    cpu      where the CPU goes during the ingest rounds: web workers, scheduler, Redis, Postgres
    aof      /track at c=32 against a redis-server of its own from deploy/redis.conf, with its
             append-only file (appendfsync everysec) on and off (bench/persistence.py)
    memory   resident memory of each process after the runs
    sockets  resident memory per idle websocket on one worker, 2,000 sockets, for each uvicorn
             websocket option, and 10,000 dashboards on one worker (bench/sockets.py)

Results go to bench/results/latest.json and bench/results/runs/; `python -m bench.report`
turns them into docs/performance.md and its plot. `--targets` measures only what the targets
of bench/targets.py need (ingest, the summary against the bare route, live delay, idle sockets,
insights: about 10 minutes) and keeps the run in runs/ only, for the report's table of the
last three consecutive runs. Only loopback addresses are ever sent traffic.

    .venv/bin/python -m bench.run [--rounds 3] [--duration 10] [--quick] [--targets]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import asyncpg

from bench.batches import measure as batches_at
from bench.flush import RoundTrips, one_round
from bench.insights import main as insights_reads
from bench.live_load import measure as live_under_load
from bench.sockets import measure as idle_sockets
from bench.stack import (
    RESULTS,
    ROOT,
    Stack,
    children,
    commit_of,
    cpu_seconds,
    ensure_wrk,
    run_wrk,
)
from bench.targets import archive


def pids_of(name: str) -> list[int]:
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


class CpuMeter:
    """CPU seconds of each group of processes over the runs it wraps: as % of one core while
    the load runs, and per request including what the events cost after it (`settle`: the
    scheduler draining them into Postgres and flushing their counters), so a drain that falls
    behind during a short run is not left out of the bill."""

    def __init__(self, stack: Stack, server: str) -> None:
        self.groups = {
            "web workers": lambda: children(stack.processes[server].pid),
            "scheduler": lambda: [stack.processes["scheduler"].pid],
            # The machine's redis-server and postgres: nothing else should be running.
            "redis-server": lambda: pids_of("redis-server"),
            "postgres": lambda: pids_of("postgres"),
        }
        self.under_load = dict.fromkeys(self.groups, 0.0)
        self.used = dict.fromkeys(self.groups, 0.0)
        self.seconds = 0.0
        self.requests = 0.0
        self.settle_seconds: list[float] = []

    def run(self, measure, duration: float, settle=None):
        pids = {name: group() for name, group in self.groups.items()}

        def used() -> dict[str, float]:
            return {name: sum(cpu_seconds(p) for p in ps) for name, ps in pids.items()}

        before = used()
        started = time.monotonic()
        result = measure()
        self.seconds += time.monotonic() - started
        self.requests += result["rps"] * duration
        loaded = used()
        if settle is not None:
            started = time.monotonic()
            settle()
            self.settle_seconds.append(round(time.monotonic() - started, 1))
        after = used()
        for name in pids:
            self.under_load[name] += loaded[name] - before[name]
            self.used[name] += after[name] - before[name]
        return result

    def report(self) -> dict:
        """% of one core while the load ran."""
        return {name: round(100 * used / self.seconds) for name, used in self.under_load.items()}

    def per_request(self) -> dict:
        """CPU microseconds per request, what was spent settling included."""
        return {name: round(1e6 * used / self.requests) for name, used in self.used.items()}


async def _queued(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('breakdown_queue')") is None:
            return False  # a stack of code from before the queue (bench/compare.py)
        return await conn.fetchval("SELECT EXISTS (SELECT FROM breakdown_queue)")
    finally:
        await conn.close()


def queued(dsn: str) -> bool:
    """Whether the breakdown queue holds events (rollups/breakdown_queue.py). Called from
    inside the running loop, so on a loop of its own in a thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, _queued(dsn)).result()


def settled(stack: Stack, timeout: float = 600) -> None:
    """Waits until the scheduler has drained every buffered event, counted it into the
    breakdowns and flushed every changed tenant-day (the streams, dirty sets and flush
    batches of the stack's key prefix and the breakdown queue of its database are empty).
    The scheduler counts the queue every `Settings.breakdown_interval`, so a round waits
    for that count and is billed for it."""
    from redis import Redis

    from realtime.keys import SHARDS, Keys

    keys = Keys(stack.env["ANALYTICS_KEY_PREFIX"])
    redis = Redis.from_url(stack.env.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    deadline = time.monotonic() + timeout
    asked_postgres = 0.0
    try:
        while time.monotonic() < deadline:
            pipe = redis.pipeline(transaction=False)
            for shard in range(SHARDS):
                pipe.xlen(keys.events(shard))
                pipe.scard(keys.dirty(shard))
                pipe.exists(keys.flush_batch(shard))  # claimed, not yet written
            # Postgres at most once a second: each ask is a connection (a backend started),
            # billed to the round.
            if not any(pipe.execute()) and time.monotonic() - asked_postgres >= 1.0:
                asked_postgres = time.monotonic()
                if not queued(stack.env["DATABASE_URL"]):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the scheduler did not settle within {timeout} s")
    finally:
        redis.close()


def scheduler_paused(stack: Stack, measure):
    """Runs `measure` with the scheduler stopped (SIGSTOP), then lets it go on: the events
    wait in their streams, and `settled` bills their drain and flush after the round."""
    scheduler = stack.processes["scheduler"]
    scheduler.send_signal(signal.SIGSTOP)
    try:
        return measure()
    finally:
        scheduler.send_signal(signal.SIGCONT)


def median_of(runs: list[dict]) -> dict:
    return {key: round(statistics.median(r[key] for r in runs), 3)
            for key in ("rps", "p50_ms", "p99_ms")} | {"non_2xx": sum(r["non_2xx"] for r in runs)}


async def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmarks of the real processes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="short runs, no 100,000 flush")
    parser.add_argument("--targets", action="store_true",
                        help="only what bench/targets.py judges; kept in runs/, not latest.json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    wrk = ensure_wrk()
    workers = os.cpu_count() or 1
    stack = Stack(workers)
    results: dict = {"machine": {"cores": os.cpu_count(), "workers_per_server": workers},
                     "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                     "commit": commit_of(),
                     "targets_only": args.targets}
    try:
        await stack.setup(args.tenants)
        track_env = stack.track_env()
        script = ROOT / "bench" / "track.lua"
        # Ingest vs the floor, interleaved rounds at c=32.
        track_runs, bare_runs, paused_runs = [], [], []
        meters = {"track": CpuMeter(stack, "web"), "bare": CpuMeter(stack, "bare"),
                  "track, scheduler paused": CpuMeter(stack, "web")}
        # Each /track round is followed by the scheduler settling its events, counted in its
        # CPU per request and kept out of the next bare round.
        settled(stack)
        for _ in range(args.rounds):
            bare_runs.append(meters["bare"].run(
                lambda: run_wrk(wrk, stack.url("bare"), script, 32, args.duration, track_env),
                args.duration))
            track_runs.append(meters["track"].run(
                lambda: run_wrk(wrk, stack.url("web"), script, 32, args.duration, track_env),
                args.duration, settle=lambda: settled(stack)))
            # Not a target: what the web path alone reaches while the scheduler waits, to
            # tell its cost from the scheduler's and Postgres's share of the cores.
            paused_runs.append(meters["track, scheduler paused"].run(
                lambda: scheduler_paused(stack, lambda: run_wrk(
                    wrk, stack.url("web"), script, 32, args.duration, track_env)),
                args.duration, settle=lambda: settled(stack)))
        ingest = {"track": median_of(track_runs), "bare": median_of(bare_runs),
                  "track, scheduler paused": median_of(paused_runs)}
        ingest["ratio_rps"] = round(ingest["track"]["rps"] / ingest["bare"]["rps"], 3)
        ingest["ratio_rps_scheduler_paused"] = round(
            ingest["track, scheduler paused"]["rps"] / ingest["bare"]["rps"], 3)
        # % of one core per group while the load ran, and CPU microseconds per request over
        # the same rounds with what settling their events took.
        ingest["cpu_percent_of_a_core"] = {name: meter.report() for name, meter in meters.items()}
        ingest["cpu_us_per_request"] = {name: meter.per_request()
                                        for name, meter in meters.items()}
        ingest["settle_seconds_after_each_track_round"] = meters["track"].settle_seconds
        # Whole-system CPU per accepted event: the web workers, Redis, scheduler, Postgres.
        ingest["cpu_us_per_event_whole_system"] = sum(
            ingest["cpu_us_per_request"]["track"].values())
        results["ingest_c32"] = ingest
        print(json.dumps({"ingest_c32": ingest}), flush=True)

        # How /track's micro-batches come out, and a flame summary of the workers behind them.
        if not args.targets:
            await profile_and_sweep(stack, wrk, args, track_env, results)

        results["memory_after_runs"] = stack.memory()
        results["idle_websockets"] = await idle_sockets(
            stack, count=500 if args.quick else 2000, most=0 if args.quick else 10_000,
            rounds=args.rounds, variants=["serve"] if args.targets else None)
        print(json.dumps({"idle_websockets": results["idle_websockets"]}), flush=True)

        # The live target's setting: 500 dashboards on 50 tenants, ingest at half its peak,
        # in each round: the target holds when it holds in every one.
        rounds = []
        for _ in range(args.rounds):
            rounds.append(await live_under_load(
                stack, ingest["track"]["rps"] / 2, probes=100 if args.quick else 300))
            print(json.dumps({"live_under_load": rounds[-1]}), flush=True)
        p99s = [r["track_response_to_update"]["p99_ms"] for r in rounds]
        # One more round with the workers sampled: the profile behind the figure.
        profiled = await live_under_load(stack, ingest["track"]["rps"] / 2,
                                         probes=100 if args.quick else 300,
                                         profile="profile-live-500-sockets.txt")
        results["live_under_load"] = {**rounds[p99s.index(max(p99s))],
                                      "p99_ms_each_round": p99s,
                                      "profile": profiled["profile"]}
    finally:
        await stack.teardown()

    if not args.targets:
        # What the append-only file costs, on a redis-server and stack of their own.
        from bench.persistence import measure as persistence_cost

        results["persistence"] = await persistence_cost(
            wrk, rounds=args.rounds, duration=args.duration, tenants=args.tenants)
        print(json.dumps({"persistence": results["persistence"]["median"]}), flush=True)

    # GET summary against the bare route returning the same body, on a stack of its own.
    from bench.reads import measure as summary_vs_bare

    results["summary_c16"] = await summary_vs_bare(wrk, rounds=args.rounds,
                                                   duration=args.duration)
    print(json.dumps({"summary_c16": {k: v for k, v in results["summary_c16"].items()
                                      if k != "runs"}}), flush=True)

    if not args.targets:
        # The worst case, on its own server: 500 dashboards on ONE tenant, one event at a time.
        events = "100" if args.quick else "400"
        out = subprocess.run([sys.executable, "-m", "bench.live_latency",
                              "--events", events, "--sockets", "500"],
                             capture_output=True, text=True, cwd=ROOT)
        try:
            results["live"] = json.loads(out.stdout[out.stdout.index("{"):])
        except ValueError:
            results["live"] = {"error": (out.stderr or out.stdout)[-500:]}
        print(json.dumps({"live": results["live"]}), flush=True)

    # Before the flush rounds, which count round trips by patching the clients.
    results["insights"] = await insights_reads(requests=200 if args.quick else 400,
                                               visitors=20_000, rounds=1 if args.quick else 2)
    print(json.dumps({"insights": results["insights"]["results"]}), flush=True)

    if not args.targets:
        RoundTrips.install()
        sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
        results["flush"] = [await one_round(size, 2) for size in sizes]
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"kept in {archive(results).relative_to(ROOT)}", flush=True)


async def profile_and_sweep(stack: Stack, wrk: str, args, track_env: dict, results: dict) -> None:
    """Batch sizes with a profile, the concurrency sweep for the plot, and the GET endpoints:
    what the page shows beyond the targets."""
    script = ROOT / "bench" / "track.lua"
    # Each measured from a settled scheduler: the backlog of the round before (drained and
    # counted every breakdown interval) would otherwise share the cores with this one.
    results["batches"] = []
    for connections in (32, 1):
        settled(stack)
        results["batches"].append(batches_at(stack, wrk, connections, args.duration,
                                              profile=connections > 1))
    print(json.dumps({"batches": [{"connections": b["connections"], **b["batches"]}
                                  for b in results["batches"]]}), flush=True)

    sweep = []
    for connections in (1, 4, 16, 32, 64):
        seconds = max(2, args.duration // 2)
        settled(stack)
        bare = run_wrk(wrk, stack.url("bare"), script, connections, seconds, track_env)
        track = run_wrk(wrk, stack.url("web"), script, connections, seconds, track_env)
        sweep.append({"connections": connections, "track": track, "bare": bare})
    results["sweep"] = sweep

    stack.analytics("flush")
    read_env = {"BENCH_TENANT": str(stack.first_tenant), "BENCH_TOKEN": stack.token}
    reads = [run_wrk(wrk, stack.url("web"), ROOT / "bench" / "read.lua", 16, args.duration,
                     read_env)
             for _ in range(args.rounds)]
    results["reads_c16"] = median_of(reads)
    print(json.dumps({"reads_c16": results["reads_c16"]}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
