"""One drain and one flush of every shard, with the queued events counted into the
breakdowns: what the scheduler does each interval (counting only every
`Settings.breakdown_interval`), and what `analytics flush`, the demo and the tests do once."""

from __future__ import annotations

import datetime as dt

import asyncpg
from redis.asyncio import Redis

from realtime.keys import Keys
from realtime.scripts import Scripts
from rollups.breakdown_queue import count_queue
from rollups.breakdowns import Bounds
from rollups.drain import drain_all
from rollups.faults import Fault, no_fault
from rollups.flush import flush_all
from rollups.locks import Locking


async def drain_and_flush(redis: Redis, pool: asyncpg.Pool, keys: Keys, scripts: Scripts, *,
                          consumer: str, locking: Locking = Locking.TRY,
                          known_months: set[dt.date] | None = None,
                          count_breakdowns: bool = True,
                          bounds: dict[int, Bounds] | None = None,
                          fault: Fault = no_fault) -> tuple[int, int]:
    """Stores the buffered raw events, counts the queued ones into the breakdowns (with
    `count_breakdowns`; `bounds` carries each shard's from one count to the next), then
    flushes the counters: (events, tenant-days)."""
    events = await drain_all(redis, pool, keys, scripts, consumer=consumer, locking=locking,
                             known_months=known_months, fault=fault)
    if count_breakdowns:
        await count_queue(pool, scripts, keys, locking=locking, bounds=bounds, fault=fault)
    rollups = await flush_all(redis, pool, keys, scripts, locking=locking, fault=fault)
    return events, rollups
