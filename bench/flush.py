"""Flush cost against the number of changed tenant-days.

For each size N: N tenants each get events through the real ingestion script (so the Redis
state is what production builds), then one drain and one flush are timed. Each size runs in
a database and key prefix of its own, removed afterwards. Prints JSON and writes
bench/results/flush.json.

    .venv/bin/python -m bench.flush [--sizes 1000 10000 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from redis.asyncio.connection import AbstractConnection

from app.clients import Clients, make_redis
from app.ops.migrate import migrate
from app.services import make_ingestor
from app.settings import Settings
from bench.stack import RESULTS, drop_scratch
from realtime.event_types import PAGEVIEW
from realtime.ingest import Sender
from realtime.keys import Keys
from realtime.scripts import Scripts
from realtime.validation import parse_event
from rollups.drain import drain_all
from rollups.flush import flush_all
from rollups.locks import Locking

UTC = ZoneInfo("UTC")


class RoundTrips:
    """Counts Redis round trips (one packed send each, a pipeline is one) and Postgres queries."""

    redis = 0
    postgres = 0

    @classmethod
    def install(cls) -> None:
        original = AbstractConnection.send_packed_command

        async def counted(self, command, check_health=True):
            cls.redis += 1
            return await original(self, command, check_health)

        AbstractConnection.send_packed_command = counted

    @classmethod
    def on_query(cls, record) -> None:
        cls.postgres += 1

    @classmethod
    def snapshot(cls) -> tuple[int, int]:
        return cls.redis, cls.postgres


async def _log(conn: asyncpg.Connection) -> None:
    conn.add_query_logger(RoundTrips.on_query)


async def one_round(size: int, events_per_day: int) -> dict:
    run = secrets.token_hex(4)
    dsn = f"postgresql://postgres@127.0.0.1:5432/analytics_bench_{run}"
    base = Settings.from_env({"DATABASE_URL": dsn, "SECRET_KEY": "bench",
                              "ANALYTICS_KEY_PREFIX": f"bench:{run}:",
                              "RATE_LIMIT_PER_MINUTE": "1000000",
                              "RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0"})
    await migrate(dsn)
    redis = make_redis(base.redis_url, timeout=30)
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=10, init=lambda conn: _log(conn))
    keys = Keys(base.key_prefix)
    scripts = Scripts.load(redis)
    try:
        await pool.execute(
            "INSERT INTO tenants (name) SELECT 't' || g FROM generate_series(1, $1) g", size)
        ids = [r["id"] for r in await pool.fetch("SELECT id FROM tenants ORDER BY id")]
        ingestor = make_ingestor(Clients(settings=base, keys=keys, redis=redis, pool=pool,
                                         scripts=scripts))
        now = time.time()
        started = time.perf_counter()
        for chunk in range(0, len(ids), 500):
            jobs = []
            for tenant_id in ids[chunk:chunk + 500]:
                for n in range(events_per_day):
                    body = {"tenant_id": tenant_id, "event_type": PAGEVIEW.name}
                    event, meta = parse_event(orjson.dumps(body))
                    sender = Sender(f"192.0.2.{n % 250}", "Mozilla/5.0 bench", "")
                    jobs.append(ingestor.ingest(event, meta, sender, UTC, now))
            await asyncio.gather(*jobs)
        ingest_seconds = time.perf_counter() - started

        r0, p0 = RoundTrips.snapshot()
        started = time.perf_counter()
        events = await drain_all(redis, pool, keys, scripts, consumer="bench", locking=Locking.WAIT)
        drain_seconds = time.perf_counter() - started
        r1, p1 = RoundTrips.snapshot()
        started = time.perf_counter()
        days = await flush_all(redis, pool, keys, scripts, locking=Locking.WAIT)
        flush_seconds = time.perf_counter() - started
        r2, p2 = RoundTrips.snapshot()
        assert days == size, (days, size)
        assert events == size * events_per_day, events
        return {
            "tenant_days": size, "events": events, "ingest_s": round(ingest_seconds, 3),
            "drain_s": round(drain_seconds, 3), "flush_s": round(flush_seconds, 3),
            "drain_redis_round_trips": r1 - r0, "drain_pg_queries": p1 - p0,
            "flush_redis_round_trips": r2 - r1, "flush_pg_queries": p2 - p1,
        }
    finally:
        await pool.close()
        await drop_scratch(redis, keys.pattern(), dsn)
        await redis.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events-per-day", type=int, default=2)
    args = parser.parse_args()
    RoundTrips.install()
    results = {size: [] for size in args.sizes}
    for _ in range(args.rounds):  # interleaved, so drift hits every size alike
        for size in args.sizes:
            results[size].append(await one_round(size, args.events_per_day))
    summary = []
    for size, rounds in results.items():
        row = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        row["flush_ms_per_1000_tenant_days"] = round(row["flush_s"] / size * 1000 * 1000, 1)
        summary.append(row)
    smallest = summary[0]
    for row in summary:
        row["flush_ratio_to_smallest"] = round(row["flush_s"] / smallest["flush_s"], 2)
    out = RESULTS / "flush.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rounds": args.rounds, "median": summary}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
