"""Read latency of a 30-day /stats and a 30-day breakdown for a tenant that sent at its rate
limit all month (100 events a minute: 4.3 million events).

The rollups such a month leaves are written straight into a database of the bench's own:
60 daily rows (the 30 days and the 30 before) whose visitor and leads sketches hold
`--visitors` visitors a day (built by Redis, PFADD), and breakdown rows with the cap's 1,000
pages a day plus the other dimensions' handful of values; then the spans the scheduler
builds over the days that are over (rollups.spans). The reads are what /stats and /breakdown
do over them; they never touch the raw events (only `today`/`yesterday` series do). Each
read is measured three ways, interleaved, median of the rounds:

    spans      as a dashboard of a tenant still at its rate limit sees it: the tenant's
               rollups generation is renewed every second (each drain and flush of its
               events renews it), so /stats and breakdowns come from the process's cache
               between renewals and from Postgres after each
    uncached   the same with the cache of answers over periods never holding and no read
               shared: every request reads Postgres
    days only  uncached, and the spans set aside, as for days not yet in one

The app is driven in process (Quart's test client) at concurrency 8, so the numbers are the
handler, Redis and Postgres without HTTP parsing. Prints JSON and writes
bench/results/insights.json; `make bench` runs it too.

    .venv/bin/python -m bench.insights [--requests 400] [--visitors 20000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import secrets
import statistics
import time
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from app.factory import create_app
from app.ops.migrate import migrate
from app.settings import Settings
from bench.stack import drop_scratch
from realtime.event_types import COUNTERS
from realtime.generations import renew_rollups
from rollups.cache import GenerationCache
from rollups.dimensions import DIMENSIONS, OTHER
from rollups.periods import closed_parts
from rollups.spans import build

DAYS = 30
EVENTS_PER_DAY = 100 * 60 * 24
OTHER_VALUES = 8  # values a day of each dimension but the page

COUNTER_PARAMS = ', '.join(f'${i}' for i in range(3, 3 + len(COUNTERS)))


async def sketch(redis, key: str, visitors: int, prefix: str) -> bytes:
    await redis.delete(key)
    for start in range(0, visitors, 5000):
        await redis.pfadd(key, *(f"{prefix}{i}" for i in range(start, min(visitors, start + 5000))))
    value = await redis.get(key)
    await redis.delete(key)
    return value


async def seed(pool: asyncpg.Pool, redis, keys_prefix: str, tenant_id: int, today: dt.date,
               visitors: int) -> None:
    columns = ", ".join(COUNTERS)
    for back in range(DAYS + DAYS):  # this period and the one before
        day = today - dt.timedelta(days=back)
        hll = await sketch(redis, f"{keys_prefix}bench:v", visitors, f"{day}:")
        leads = await sketch(redis, f"{keys_prefix}bench:l", visitors // 5, f"{day}:")
        counts = [EVENTS_PER_DAY // len(COUNTERS)] * len(COUNTERS)
        await pool.execute(
            f"INSERT INTO daily_rollups (tenant_id, day, {columns}, visitors, visitors_hll, "
            f"leads, leads_hll) VALUES ($1, $2, {COUNTER_PARAMS}, "
            f"{', '.join(f'${3 + len(COUNTERS) + i}' for i in range(4))})",
            tenant_id, day, *counts, visitors, hll, visitors // 5, leads)
        rows = []
        for dimension in DIMENSIONS:
            values = 1000 if dimension.name == "page" else OTHER_VALUES
            for n in range(values):
                rows.append((tenant_id, day, dimension.name, f"/{dimension.name}/{n}",
                             EVENTS_PER_DAY // values, visitors // values,
                             visitors // values // 5))
            if dimension.name == "page":
                rows.append((tenant_id, day, dimension.name, OTHER, 500, 100, 10))
        await pool.copy_records_to_table(
            "breakdown_rollups", records=rows,
            columns=["tenant_id", "day", "dimension", "value", "events", "visitors", "leads"])
    await pool.execute("ANALYZE breakdown_rollups")
    await pool.execute("ANALYZE daily_rollups")


async def measure(client, url: str, headers: dict, requests: int, concurrency: int = 8) -> dict:
    latencies: list[float] = []
    queue = list(range(requests))

    async def worker():
        while queue:
            queue.pop()
            started = time.perf_counter()
            response = await client.get(url, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, await response.get_data()

    for _ in range(3):  # warm up at the concurrency measured: the pool opens its connections
        await asyncio.gather(*(client.get(url, headers=headers) for _ in range(concurrency)))
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"req_per_s": round(requests / elapsed, 1),
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2)}


class NeverHolds(GenerationCache):
    def get(self, key, generation):
        return None


class NeverShared(dict):
    """Reads under way, never found: each request makes its own."""

    def get(self, key, default=None):
        return default


async def renewing(svc, tenant_id: int, every: float = 1.0) -> None:
    while True:
        await renew_rollups(svc.scripts, svc.keys, [tenant_id])
        await asyncio.sleep(every)


READS = ("stats?period=30d", "breakdown/page?period=30d", "breakdown/source?period=30d")
SPAN_TABLES = ("rollup_spans", "breakdown_spans")


async def main(requests: int, visitors: int, rounds: int = 2) -> dict:
    """Each read with the spans the scheduler builds (rollups.spans) and a tenant still
    sending, uncached, and from the days alone (the spans set aside, as for days not yet in
    one), interleaved, median of the rounds."""
    run = secrets.token_hex(4)
    dsn = f"postgresql://postgres@127.0.0.1:5432/analytics_bench_insights_{run}"
    settings = dataclasses.replace(Settings.from_env({
        "DATABASE_URL": dsn, "SECRET_KEY": "bench", "ANALYTICS_KEY_PREFIX": f"bench:{run}:"}))
    await migrate(dsn)
    runs: dict[str, dict[str, list[dict]]] = {"spans": {}, "uncached": {}, "days": {}}
    try:
        app = create_app(settings)
        async with app.test_app():
            svc = app.extensions["analytics"]
            tenant = await create_tenant(svc.pool, "Bench", "UTC")
            _, token = await create_token(svc.pool, tenant.id)
            headers = {"Authorization": f"Bearer {token}"}
            today = dt.datetime.now(dt.UTC).date()
            await seed(svc.pool, svc.redis, settings.key_prefix, tenant.id, today, visitors)
            client = app.test_client()
            base = f"/api/analytics/{tenant.id}"
            cache = svc.period_reads
            for _ in range(rounds):
                for mode in ("spans", "uncached", "days"):
                    if mode == "spans":  # what the scheduler's job builds: days before today
                        await build(svc.pool, svc.scripts, svc.keys, tenant.id,
                                    today - dt.timedelta(days=1), closed_parts(today))
                        await svc.pool.execute("VACUUM ANALYZE rollup_spans")
                        await svc.pool.execute("VACUUM ANALYZE breakdown_spans")
                    elif mode == "days":
                        for table in SPAN_TABLES:
                            await svc.pool.execute(f"DELETE FROM {table}")
                    svc.period_reads = cache if mode == "spans" else NeverHolds()
                    svc.rollup_reads_running = {} if mode == "spans" else NeverShared()
                    renewer = asyncio.create_task(renewing(svc, tenant.id))
                    try:
                        for read in READS:
                            runs[mode].setdefault(read, []).append(
                                await measure(client, f"{base}/{read}", headers, requests))
                    finally:
                        renewer.cancel()
    finally:
        # Its keys too (the day's salts, the tenant's generations), not only its database.
        redis = Redis.from_url(settings.redis_url)
        try:
            await drop_scratch(redis, f"{settings.key_prefix}*", dsn)
        finally:
            await redis.aclose()

    def median(measured: list[dict]) -> dict:
        return {key: round(statistics.median(m[key] for m in measured), 2)
                for key in ("req_per_s", "p50_ms", "p99_ms")}

    return {"visitors_per_day": visitors, "events_per_day": EVENTS_PER_DAY, "days": DAYS,
            "concurrency": 8, "requests": requests, "rounds": rounds,
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "results": [{"read": read, "spans": median(runs["spans"][read]),
                         "uncached": median(runs["uncached"][read]),
                         "days_only": median(runs["days"][read])} for read in READS]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--visitors", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    report = asyncio.run(main(args.requests, args.visitors, args.rounds))
    print(json.dumps(report, indent=2))
    out = Path(__file__).parent / "results" / "insights.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
