"""The drain's cost per event, with the breakdowns counted from its queue.

Each round buffers N events of the bench mix (bench/track.lua: TENANTS tenants, VISITORS
visitors, its event types, user agents and addresses) in Redis through the real ingest path,
in `--passes` parts, each drained by a `drain_all` (after a warm-up drain of a few events),
and times the drains and the counts of the breakdown queue: events/s, and CPU per event of
this process and of the Postgres processes (this database's backends, and the shared
writers: checkpointer, background writer, walwriter, whose CPU other users of the server
share). Modes, interleaved: `on` counts the queue once after the passes, as the scheduler
counts it every `Settings.breakdown_interval` (six passes at the default 5 s interval);
`each` after every pass; `off` makes `breakdowns.count` a no-op. Each round has a database
and key prefix of its own, removed afterwards. Prints JSON and writes
bench/results/drain.json.

    .venv/bin/python -m bench.drain [--events 30000] [--tenants 10000] [--rounds 3]
                                    [--passes 1] [--modes on each off]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import secrets
import statistics
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from app.clients import Clients, make_redis
from app.heap import long_lived
from app.ops.migrate import migrate
from app.services import make_ingestor
from app.settings import Settings
from bench.stack import RESULTS, cpu_seconds, drop_scratch
from realtime.event_types import EVENT_TYPES, PAGEVIEW
from realtime.ingest import Sender
from realtime.keys import Keys
from realtime.scripts import Scripts
from realtime.validation import parse_event
from rollups import breakdowns
from rollups.breakdown_queue import count_queue
from rollups.drain import drain_all
from rollups.locks import Locking

UTC = ZoneInfo("UTC")
# bench/track.lua's mix: page views three times as often as each other type but the timed.
TYPES = (PAGEVIEW.name, PAGEVIEW.name, *(t.name for t in EVENT_TYPES if not t.timed))
WARM_UP = 200
SHARED_WRITERS = ("checkpointer", "background writer", "walwriter")


def mix_event(rng: random.Random, tenants: list[int], visitors: int) -> tuple[dict, Sender]:
    tenant = rng.choice(tenants)
    kind = rng.choice(TYPES)
    visitor = rng.randrange(1, visitors + 1)
    body = {"tenant_id": tenant, "event_type": kind, "metadata": {"button_location": "hero"}}
    address = f"198.{18 + visitor // 65536 % 2}.{visitor // 256 % 256}.{visitor % 256}"
    agent = f"Mozilla/5.0 (X11; Linux x86_64) Firefox/140.{visitor % 97}"
    return body, Sender(address, agent, "")


def postgres_pids(database: str) -> tuple[list[int], list[int]]:
    """(this database's backends, the shared writers) among the server's processes."""
    ours, shared = [], []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if not line.startswith("postgres:"):
            continue
        if f" {database} " in line:
            ours.append(int(proc.name))
        elif any(name in line for name in SHARED_WRITERS):
            shared.append(int(proc.name))
    return ours, shared


def cpu_of(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def one_round(events: int, tenant_count: int, visitors: int, mode: str,
                    seed: int, passes: int = 1) -> dict:
    run = secrets.token_hex(4)
    database = f"analytics_bench_{run}"
    dsn = f"postgresql://postgres@127.0.0.1:5432/{database}"
    base = Settings.from_env({"DATABASE_URL": dsn, "SECRET_KEY": "bench",
                              "ANALYTICS_KEY_PREFIX": f"bench:{run}:",
                              "RATE_LIMIT_PER_MINUTE": "1000000",
                              "RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0",
                              "STREAM_MAX_EVENTS": "10000000"})
    base = dataclasses.replace(base, track_deadline=60.0)  # a busy machine fails no event
    await migrate(dsn)
    redis = make_redis(base.redis_url, timeout=30)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)
    keys = Keys(base.key_prefix)
    scripts = Scripts.load(redis)
    original = breakdowns.count
    try:
        await pool.execute(
            "INSERT INTO tenants (name) SELECT 't' || g FROM generate_series(1, $1) g",
            tenant_count)
        ids = [r["id"] for r in await pool.fetch("SELECT id FROM tenants ORDER BY id")]
        ingestor = make_ingestor(Clients(settings=base, keys=keys, redis=redis, pool=pool,
                                         scripts=scripts))
        rng = random.Random(seed)
        now = time.time()

        async def buffer(count: int) -> None:
            for chunk in range(0, count, 500):
                jobs = []
                for _ in range(min(500, count - chunk)):
                    body, sender = mix_event(rng, ids, visitors)
                    event, meta = parse_event(orjson.dumps(body))
                    jobs.append(ingestor.ingest(event, meta, sender, UTC, now))
                await asyncio.gather(*jobs)

        # A scheduler that has run a while: its parsers loaded (ua-parser compiles its rules
        # on first use), its statements prepared, its temporary tables made.
        await buffer(WARM_UP)
        assert await drain_all(redis, pool, keys, scripts, consumer="bench",
                               locking=Locking.WAIT) == WARM_UP
        await count_queue(pool, scripts, keys, locking=Locking.WAIT)

        if mode == "off":
            async def no_count(conn, rows, **options) -> int:  # whatever count is given
                return 0
            breakdowns.count = no_count
        async with pool.acquire() as conn:  # every connection the drain may use, started
            await conn.fetchval("SELECT 1")
        bounds: dict[int, breakdowns.Bounds] = {}  # the scheduler's, kept across counts
        own = pg = shared_cpu = seconds = 0.0
        moved = 0
        for n in range(passes):
            await buffer(events // passes + (n < events % passes))
            ours, shared = postgres_pids(database)
            pg0, shared0, own0 = cpu_of(ours), cpu_of(shared), time.process_time()
            started = time.perf_counter()
            moved += await drain_all(redis, pool, keys, scripts, consumer="bench",
                                     locking=Locking.WAIT)
            if mode == "each" or n == passes - 1:
                await count_queue(pool, scripts, keys, locking=Locking.WAIT, bounds=bounds)
            seconds += time.perf_counter() - started
            own += time.process_time() - own0
            ours, _ = postgres_pids(database)  # the pool may have opened more
            pg += cpu_of(ours) - pg0
            shared_cpu += cpu_of(shared) - shared0
        assert moved == events, (moved, events)
        if mode != "off":
            counted = await pool.fetchval(
                "SELECT sum(events) FROM breakdown_rollups WHERE dimension = 'country'")
            assert counted == WARM_UP + events, (counted, events)
        return {
            "mode": mode, "passes": passes, "events": moved, "drain_s": round(seconds, 3),
            "events_per_s": round(moved / seconds),
            "drain_cpu_us_per_event": round(own / moved * 1e6, 1),
            "pg_backend_cpu_us_per_event": round(pg / moved * 1e6, 1),
            "pg_shared_writers_cpu_us_per_event": round(shared_cpu / moved * 1e6, 1),
            "total_cpu_us_per_event": round((own + pg) / moved * 1e6, 1),
        }
    finally:
        breakdowns.count = original
        await pool.close()
        await drop_scratch(redis, keys.pattern(), dsn)
        await redis.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--modes", nargs="+", choices=("on", "each", "off"), default=["on"])
    parser.add_argument("--out", type=Path, default=RESULTS / "drain.json")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    # The garbage collector set as in the scheduler (app/ops/scheduler.py), whose drains
    # this stands for: without it, collections took about a quarter of the drain's CPU here.
    with long_lived():
        for n in range(args.rounds):  # interleaved, so drift hits every mode alike
            for mode in args.modes:
                row = await one_round(args.events, args.tenants, args.visitors, mode, seed=n,
                                      passes=args.passes)
                print(json.dumps(row), flush=True)
                results[mode].append(row)
    summary = [{key: statistics.median(r[key] for r in rounds) if key != "mode" else mode
                for key in rounds[0]} for mode, rounds in results.items()]
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"rounds": args.rounds, "median": summary,
                                    "all": results}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
