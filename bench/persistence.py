"""What Redis's append-only file costs `/track`: throughput with and without it.

Runs the real `web` and `scheduler` (bench/stack.py's Stack) against a redis-server of its
own started from deploy/redis.conf (appendonly yes, appendfsync everysec), and measures
`/track` with wrk at c=32 in interleaved rounds, changing only the setting with CONFIG SET
between them (same processes, same Redis, same data): the append-only file off, on with
production's `appendfsync everysec`, and on with `appendfsync always` (an fsync before the
replies of each event-loop turn), once the rewrite that turning it on starts has finished.
`make bench` runs it (bench/run.py); alone it writes bench/results/persistence.json.

    .venv/bin/python -m bench.persistence [--rounds 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

from bench.stack import RESULTS, ROOT, Stack, cpu_seconds, ensure_wrk, run_wrk
from tests.support.servers import REDIS_CONF, RedisServer

# What each round sets: no append-only file, production's setting, and an fsync per write.
MODES = {
    "off": {"appendonly": "no"},
    "everysec": {"appendonly": "yes", "appendfsync": "everysec"},
    "always": {"appendonly": "yes", "appendfsync": "always"},
}


async def configure(redis, settings: dict[str, str]) -> None:
    """Applies a mode and waits until Redis is steady: turning the append-only file on
    writes a fresh base file in a forked child first."""
    for name, value in settings.items():
        await redis.config_set(name, value)
    deadline = time.monotonic() + 120
    while True:
        info = await redis.info("persistence")
        steady = not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"])
        if steady and int(info["aof_enabled"]) == (settings["appendonly"] == "yes"):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis not steady after {settings}: {info}")
        await asyncio.sleep(0.2)


async def measure(wrk: str, *, rounds: int, duration: int, tenants: int = 10_000,
                  connections: int = 32) -> dict:
    from redis.asyncio import Redis

    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    server = RedisServer(config=(REDIS_CONF,)).start()
    stack = Stack(os.cpu_count() or 1, redis_url=server.url)
    redis = Redis.from_url(server.url)
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    try:
        await stack.setup(tenants, bare=False)
        env = stack.track_env()
        for n in range(rounds):
            # Alternating which goes first, so a drift of the machine hits both alike.
            for mode, settings in list(MODES.items())[::1 if n % 2 == 0 else -1]:
                await configure(redis, settings)
                # Redis's own CPU per request: steadier than req/s on a shared machine.
                cpu = cpu_seconds(server.process.pid)
                rewrites = int((await redis.info("persistence"))["aof_rewrites"])
                run = await asyncio.to_thread(
                    run_wrk, wrk, stack.url("web"), ROOT / "bench" / "track.lua", connections,
                    duration, env)
                # A rewrite (a fork writing the whole data set) during a run is part of the
                # cost, but a lumpy one: say when one happened.
                after = int((await redis.info("persistence"))["aof_rewrites"])
                run["aof_rewrites"] = after - rewrites
                requests = run["rps"] * duration
                run["redis_cpu_us_per_request"] = round(
                    (cpu_seconds(server.process.pid) - cpu) * 1e6 / max(requests, 1), 1)
                runs[mode].append(run)
    finally:
        await redis.aclose()
        await stack.teardown()
        server.close()
    keys = ("rps", "p50_ms", "p99_ms", "redis_cpu_us_per_request")
    median = {mode: {key: round(statistics.median(r[key] for r in rs), 3) for key in keys}
              | {"non_2xx": sum(r["non_2xx"] for r in rs)}
              for mode, rs in runs.items()}
    return {
        "started": started, "rounds": rounds, "seconds_per_run": duration,
        "connections": connections,
        "runs": runs, "median": median,
        "ratio_rps_to_off": {mode: round(median[mode]["rps"] / median["off"]["rps"], 3)
                             for mode in MODES if mode != "off"},
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--tenants", type=int, default=10_000)
    args = parser.parse_args()
    results = await measure(ensure_wrk(), rounds=args.rounds, duration=args.duration,
                            tenants=args.tenants)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "persistence.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
