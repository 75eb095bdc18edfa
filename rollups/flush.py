"""Flushing live counters and visitor sketches into daily rollups, exactly once.

One flush of a shard repeats, until a batch takes the last tenant-day that was dirty (those
dirtied meanwhile wait for the next flush, so that a flush under load ends):

    claim    pending counters of dirty tenant-days move into one batch with a fresh id
             (flush_claim.lua); an unfinished batch of an earlier flush is taken up first
    sketch   each tenant-day's visitor and leads sketches are unioned with its durable copy
             (merge_sketch.lua): unions are idempotent, so this may run any number of times
    apply    one transaction records the batch id and adds the counters; a batch whose id
             is already recorded adds nothing, because it was applied before a crash
    renew    the batch's tenants get new rollup generations (realtime/generations.py):
             every process reads their rollups again at its next read
    reseed   live totals are raised to what is durable plus what is pending
    forget   the batch is deleted (flush_done.lua)

A crash between any two steps leaves the batch in Redis, and the next flush finishes it.
The cost is proportional to the tenant-days that changed, in a fixed number of round trips
per batch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from realtime import keys as k
from realtime.event_types import COUNTERS
from realtime.generations import renew_rollups
from realtime.scripts import Scripts
from rollups import spans
from rollups.faults import Fault, no_fault
from rollups.locks import Locking, shard_lock

BATCH_SIZE = 5000
# Tenant-days per sketch-merge and reseed call: bounds how long one call holds Redis (250
# held it up to 15 ms on a loaded machine, and /track and live waited). The claim stays one
# call per batch: a batch id others can see must name a complete batch (see flush_claim.lua).
SCRIPT_CHUNK = 100
LOCK_CLASS = 0x666C  # advisory lock class of flushes (see rollups.locks)

_COLUMNS = ", ".join(COUNTERS)
_UNNEST = ", ".join(f"${i}::bigint[]" for i in range(3, 3 + len(COUNTERS)))
_ADD = ",\n    ".join(f"{c} = r.{c} + excluded.{c}" for c in COUNTERS)
_V = 3 + len(COUNTERS)
APPLY_SQL = f"""
INSERT INTO daily_rollups AS r (tenant_id, day, {_COLUMNS}, visitors, visitors_hll, leads,
                                leads_hll)
SELECT u.* FROM unnest($1::bigint[], $2::date[], {_UNNEST}, ${_V}::bigint[], ${_V + 1}::bytea[],
                       ${_V + 2}::bigint[], ${_V + 3}::bytea[])
    AS u (tenant_id, day, {_COLUMNS}, visitors, visitors_hll, leads, leads_hll)
-- A tenant deleted meanwhile has nothing left to count into (and must not stall the shard).
JOIN tenants t ON t.id = u.tenant_id
-- One order of row locks for every flush: two applying the same rows at once (flushers
-- without the shard lock, as tests run them) would otherwise each wait for the other.
ORDER BY u.tenant_id, u.day
ON CONFLICT (tenant_id, day) DO UPDATE SET
    {_ADD},
    visitors_hll = CASE
        WHEN excluded.visitors_hll IS NOT NULL AND excluded.visitors >= r.visitors
        THEN excluded.visitors_hll ELSE r.visitors_hll END,
    visitors = GREATEST(r.visitors, excluded.visitors),
    leads_hll = CASE
        WHEN excluded.leads_hll IS NOT NULL AND excluded.leads >= r.leads
        THEN excluded.leads_hll ELSE r.leads_hll END,
    leads = GREATEST(r.leads, excluded.leads),
    updated_at = now()
RETURNING tenant_id, day, {_COLUMNS}
"""

SKETCHES_SQL = """
SELECT t.tenant_id, t.day, r.visitors_hll, r.leads_hll
FROM unnest($1::bigint[], $2::date[]) AS t (tenant_id, day)
JOIN daily_rollups r USING (tenant_id, day)
WHERE r.visitors_hll IS NOT NULL OR r.leads_hll IS NOT NULL
"""


@dataclass
class TenantDay:
    tenant_id: int
    day: dt.date
    counters: dict[str, int]
    sketch: bytes | None = None
    visitors: int = 0
    leads_sketch: bytes | None = None
    leads: int = 0


@dataclass(frozen=True)
class Claimed:
    batch_id: str
    last: bool  # the batch took every tenant-day dirty at its claim


async def claim(redis: Redis, keys: k.Keys, fs: Scripts, shard: int,
                batch_size: int = BATCH_SIZE) -> Claimed | None:
    """Moves up to `batch_size` dirty tenant-days into a batch, unless an earlier flush left
    one unfinished: the batch to apply, None when there is none."""
    members = [m.decode() for m in await redis.srandmember(keys.dirty(shard), batch_size)]
    counter_keys = [keys.pending_counters(*k.parse_dirty_member(m)) for m in members]
    fresh = f"{shard}:{uuid.uuid4().hex}"
    batch_id = await fs.flush_claim(
        keys=[keys.dirty(shard), keys.flush_batch(shard), keys.flush_id(shard), *counter_keys],
        args=[fresh, *members],
    )
    if not batch_id:
        return None
    batch_id = batch_id.decode()
    return Claimed(batch_id, last=batch_id == fresh and len(members) < batch_size)


async def read_batch(redis: Redis, keys: k.Keys, shard: int) -> list[TenantDay]:
    raw = await redis.hgetall(keys.flush_batch(shard))
    days: dict[tuple[int, dt.date], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(COUNTERS, 0))
    for name, value in raw.items():
        tenant, day, counter = name.decode().split("|")
        days[(int(tenant), dt.date.fromisoformat(day))][counter] = int(value)
    return [TenantDay(t, d, c) for (t, d), c in days.items()]


def _chunks(items: list, size: int = SCRIPT_CHUNK) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def merge_sketches(conn: asyncpg.Connection, keys: k.Keys, fs: Scripts, shard: int,
                         batch: list[TenantDay]) -> None:
    durable = {
        (row["tenant_id"], row["day"]): (row["visitors_hll"], row["leads_hll"])
        for row in await conn.fetch(
            SKETCHES_SQL, [td.tenant_id for td in batch], [td.day for td in batch]
        )
    }
    chunks = _chunks(batch)
    # Each tenant-day has two sketches, its visitors' and its leads', merged in the same call.
    # Chunks go out at once rather than in a pipeline: the same on Redis Cluster, where
    # redis-py's pipelines do not reload scripts a restarted node forgot.
    replies = await asyncio.gather(*(
        fs.merge_sketch(
            keys=[keys.scratch(shard, n),
                  *(key for td in chunk for key in (keys.day_visitors(td.tenant_id, td.day),
                                                    keys.day_leads(td.tenant_id, td.day)))],
            args=[k.DAY_TTL_SECONDS,
                  *(sketch or b"" for td in chunk
                    for sketch in durable.get((td.tenant_id, td.day), (None, None)))],
        )
        for n, chunk in enumerate(chunks)
    ))
    for chunk, reply in zip(chunks, replies, strict=True):
        for i, td in enumerate(chunk):
            visitors, leads = reply[2 * i], reply[2 * i + 1]
            if visitors:
                td.sketch, td.visitors = visitors[0], int(visitors[1])
            if leads:
                td.leads_sketch, td.leads = leads[0], int(leads[1])


async def apply(conn: asyncpg.Connection, batch_id: str,
                batch: list[TenantDay]) -> list[asyncpg.Record]:
    """Adds the batch to the rollups once; returns the resulting totals of its tenant-days."""
    async with conn.transaction():
        fresh = await conn.fetchval(
            "INSERT INTO applied_flushes (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true",
            batch_id,
        )
        factor = 1 if fresh else 0
        # Even a replayed batch may grow the sketches: the spans of its days go either way.
        await spans.invalidate(conn, [(td.tenant_id, td.day) for td in batch])
        return await conn.fetch(
            APPLY_SQL,
            [td.tenant_id for td in batch],
            [td.day for td in batch],
            *[[td.counters[c] * factor for td in batch] for c in COUNTERS],
            [td.visitors for td in batch],
            [td.sketch for td in batch],
            [td.leads for td in batch],
            [td.leads_sketch for td in batch],
        )


async def reseed(keys: k.Keys, fs: Scripts, totals: list[asyncpg.Record]) -> None:
    await asyncio.gather(*(
        fs.reseed_totals(
            keys=[key for row in chunk for key in (
                keys.totals(row["tenant_id"], row["day"]),
                keys.pending_counters(row["tenant_id"], row["day"]),
            )],
            args=[k.TOTALS_TTL_SECONDS, len(COUNTERS), *COUNTERS,
                  *(row[c] for row in chunk for c in COUNTERS)],
        )
        for chunk in _chunks(totals)
    ))


async def flush_shard(redis: Redis, pool: asyncpg.Pool, keys: k.Keys, fs: Scripts,
                      shard: int, *, batch_size: int = BATCH_SIZE, locking: Locking = Locking.TRY,
                      fault: Fault = no_fault) -> int:
    """Flushes what the shard held dirty when it began (tenant-days dirtied meanwhile wait
    for the next flush, so that a flush under load ends); returns the tenant-days applied."""
    applied = 0
    async with pool.acquire() as conn, shard_lock(conn, LOCK_CLASS, shard, locking) as held:
        while held:
            claimed = await claim(redis, keys, fs, shard, batch_size)
            if claimed is None:
                break
            batch_id = claimed.batch_id
            fault("claimed")
            batch = await read_batch(redis, keys, shard)
            await merge_sketches(conn, keys, fs, shard, batch)
            fault("merged")
            totals = await apply(conn, batch_id, batch)
            fault("applied")
            await renew_rollups(fs, keys, (td.tenant_id for td in batch))
            await reseed(keys, fs, totals)
            fault("reseeded")
            await fs.flush_done(keys=[keys.flush_batch(shard), keys.flush_id(shard)],
                                args=[batch_id])
            applied += len(batch)
            if claimed.last:
                break
    return applied


async def flush_all(redis: Redis, pool: asyncpg.Pool, keys: k.Keys, fs: Scripts, *,
                    batch_size: int = BATCH_SIZE, locking: Locking = Locking.TRY,
                    fault: Fault = no_fault) -> int:
    total = 0
    for shard in range(k.SHARDS):
        total += await flush_shard(redis, pool, keys, fs, shard, batch_size=batch_size,
                                   locking=locking, fault=fault)
    return total
