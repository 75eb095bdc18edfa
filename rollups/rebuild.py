"""Repair: recompute a tenant's rollup counters and breakdowns from its raw events.

Breakdowns are counted again from the raw events in the order they happened, as the drain
counted them (values past the cap go to `(other)` the same way). Visitor sketches cannot be
recomputed (raw events keep only a daily-salted address hash,
on purpose), so they are kept as they are. The shard's drain and flush locks and the
breakdown queue's lock are held throughout, after a drain and a flush under them and with
the queue counted in the recount's transaction: every event is then either in both raw
events and rollups, or in neither yet, and the recount cannot miss or double anything.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import asyncpg
from redis.asyncio import Redis

from realtime import keys as k
from realtime.event_types import COUNTERS, EVENT_TYPES, EVENTS, TIME_MS, TIMED
from realtime.generations import renew_rollups
from realtime.scripts import Scripts
from rollups import breakdown_queue, breakdowns, drain, flush, spans
from rollups.locks import Locking, shard_lock

_COUNTS = ",\n       ".join(
    f"count(*) FILTER (WHERE event_type = '{t.name}') AS {t.counter}" for t in EVENT_TYPES
)
RECOUNT_SQL = f"""
SELECT (occurred_at AT TIME ZONE $2)::date AS day,
       count(*) AS {EVENTS},
       {_COUNTS},
       coalesce(sum(floor((metadata->>'seconds')::numeric * 1000))
                FILTER (WHERE event_type = '{TIMED.name}'), 0)::bigint AS {TIME_MS}
FROM events
WHERE tenant_id = $1 AND occurred_at >= $3
GROUP BY 1
"""
_SET = ", ".join(f"{c} = 0" for c in COUNTERS)
ZERO_SQL = f"UPDATE daily_rollups SET {_SET}, updated_at = now() WHERE tenant_id = $1 AND day >= $2"
_COLUMNS = ", ".join(COUNTERS)
_VALUES = ", ".join(f"${i}" for i in range(3, 3 + len(COUNTERS)))
_ASSIGN = ", ".join(f"{c} = excluded.{c}" for c in COUNTERS)
EVENTS_SQL = f"""
SELECT {breakdowns.EVENT_COLUMNS} FROM events
WHERE tenant_id = $1 AND occurred_at >= $2
ORDER BY occurred_at, id
"""
CLEAR_BREAKDOWNS_SQL = [
    f"DELETE FROM {table} WHERE tenant_id = $1 AND day >= $2"
    for table in ("breakdown_rollups", "breakdown_visitors")
]
RECOUNT_CHUNK = 5000

WRITE_SQL = f"""
INSERT INTO daily_rollups (tenant_id, day, {_COLUMNS}) VALUES ($1, $2, {_VALUES})
ON CONFLICT (tenant_id, day) DO UPDATE SET {_ASSIGN}, updated_at = now()
"""


async def rebuild(redis: Redis, pool: asyncpg.Pool, keys: k.Keys, scripts: Scripts,
                  tenant_id: int, timezone: str, since: dt.date, consumer: str, *,
                  breakdown_cap: int = breakdowns.DEFAULT_CAP) -> int:
    """Rewrites the tenant's counters from `since` (a local day); returns the days rewritten."""
    shard = keys.shard_of(tenant_id)
    # The earliest instant of `since` anywhere on Earth; the local day filter is exact below.
    start = dt.datetime.combine(since, dt.time(), dt.UTC) - dt.timedelta(hours=14)
    async with pool.acquire() as conn, \
            shard_lock(conn, drain.LOCK_CLASS, shard, Locking.WAIT), \
            shard_lock(conn, flush.LOCK_CLASS, shard, Locking.WAIT), \
            shard_lock(conn, breakdown_queue.LOCK_CLASS, breakdown_queue.LOCK_KEY,
                       Locking.WAIT):
        await drain.drain_shard(redis, pool, keys, scripts, shard, consumer=consumer,
                                locking=Locking.NONE)
        await flush.flush_shard(redis, pool, keys, scripts, shard, locking=Locking.NONE)
        queued: set[int] = set()  # tenants whose queued events were counted
        async with conn.transaction():
            # Counted before the days are cleared: left queued, the tenant's would be
            # counted again on top of the recount.
            while True:
                taken, tenants = await breakdown_queue.count_chunk(conn, cap=breakdown_cap)
                queued |= tenants
                if taken < breakdown_queue.CHUNK:
                    break
            rows = [r for r in await conn.fetch(RECOUNT_SQL, tenant_id, timezone, start)
                    if r["day"] >= since]
            await conn.execute(ZERO_SQL, tenant_id, since)
            await spans.invalidate(conn, [(tenant_id, since)], and_later=True)
            await conn.executemany(
                WRITE_SQL, [(tenant_id, r["day"], *(r[c] for c in COUNTERS)) for r in rows]
            )
            for sql in CLEAR_BREAKDOWNS_SQL:
                await conn.execute(sql, tenant_id, since)
            zone = ZoneInfo(timezone)
            chunk: list[asyncpg.Record] = []
            async for row in conn.cursor(EVENTS_SQL, tenant_id, start):
                if row["occurred_at"].astimezone(zone).date() >= since:
                    chunk.append(row)
                if len(chunk) >= RECOUNT_CHUNK:
                    await breakdowns.count(conn, chunk, cap=breakdown_cap)
                    chunk = []
            await breakdowns.count(conn, chunk, cap=breakdown_cap)
    await renew_rollups(scripts, keys, queued | {tenant_id})  # every process reads the new numbers
    return len(rows)
