"""The breakdown queue: raw events the drain stored, waiting to be counted into the
breakdown rollups (rollups/breakdowns.py).

The drain stores a batch and queues the events it stored (not a replay's) in one statement
(rollups/drain.py). Counting is the costly part: several breakdown rows an event and the
visitors' working set, paid per tenant, day and group counted rather than per event. So
the scheduler counts the queue every `Settings.breakdown_interval`, not every pass, and a
tenant's events of several passes are counted together; `analytics flush` counts it at
once.

`count_queue` takes the queue a chunk a transaction, oldest first, counts the chunk (a shard
at a time, each with the shard's `Bounds`) and deletes it in that transaction: a crash
leaves the chunk queued, a commit leaves it counted, so every event is counted once. Then
the chunk's tenants get new rollups generations. One process counts at a time (an advisory
lock); `rebuild` waits for it and counts the queue before it recounts a tenant's days.
"""

from __future__ import annotations

from collections import defaultdict

import asyncpg

from realtime.generations import renew_rollups
from realtime.keys import Keys
from realtime.scripts import Scripts
from rollups import breakdowns
from rollups.faults import Fault, no_fault
from rollups.locks import Locking, shard_lock

LOCK_CLASS = 0x6271  # advisory lock class of counting the queue (see rollups.locks)
LOCK_KEY = 0  # one lock for the whole queue
CHUNK = 50_000  # events a transaction

# Oldest first, as `rebuild` counts, so the values a group keeps under the cap are the
# first ones seen.
TAKE_SQL = f"""
WITH taken AS (
    DELETE FROM breakdown_queue WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM breakdown_queue ORDER BY occurred_at, id LIMIT $1))
    RETURNING id, {breakdowns.EVENT_COLUMNS})
SELECT {breakdowns.EVENT_COLUMNS} FROM taken ORDER BY occurred_at, id
"""


async def count_chunk(conn: asyncpg.Connection, *, cap: int = breakdowns.DEFAULT_CAP,
                      bounds: dict[int, breakdowns.Bounds] | None = None,
                      limit: int = CHUNK) -> tuple[int, set[int]]:
    """Within the caller's transaction: counts the oldest `limit` queued events into the
    breakdowns and deletes them; returns how many, and their tenants. The `bounds` of the
    shards counted are staged, to commit once the transaction has."""
    rows = await conn.fetch(TAKE_SQL, limit)
    by_shard: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_shard[Keys.shard_of(row["tenant_id"])].append(row)
    for shard in sorted(by_shard):  # the shards' marks locked in one order (breakdowns._mark)
        await breakdowns.count(conn, by_shard[shard], cap=cap,
                               bounds=None if bounds is None
                               else bounds.setdefault(shard, breakdowns.Bounds(shard)))
    return len(rows), {row["tenant_id"] for row in rows}


async def count_queue(pool: asyncpg.Pool, scripts: Scripts, keys: Keys, *,
                      locking: Locking = Locking.TRY, cap: int = breakdowns.DEFAULT_CAP,
                      bounds: dict[int, breakdowns.Bounds] | None = None,
                      fault: Fault = no_fault, limit: int = CHUNK) -> int:
    """Counts every queued event into the breakdowns; returns how many (0 as well when
    another process holds the queue, with `Locking.TRY`). `bounds` keeps each shard's
    `breakdowns.Bounds` from one count to the next. Ends at a chunk short of `limit`, so the
    drains of other processes cannot keep it counting."""
    bounds = {} if bounds is None else bounds
    counted = 0
    async with pool.acquire() as conn, \
            shard_lock(conn, LOCK_CLASS, LOCK_KEY, locking) as held:
        if not held:
            return 0
        while True:
            async with conn.transaction():
                taken, tenants = await count_chunk(conn, cap=cap, bounds=bounds, limit=limit)
                fault("counted")  # counted and deleted, not yet committed
            for shard in {Keys.shard_of(tenant_id) for tenant_id in tenants}:
                bounds[shard].commit()
            await renew_rollups(scripts, keys, tenants)  # no process serves what it read before
            counted += taken
            if taken < limit:
                return counted
