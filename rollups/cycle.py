"""One drain and one flush of every shard: what the scheduler does each interval, and what
`analytics flush`, the demo and the tests do once."""

from __future__ import annotations

import datetime as dt

import asyncpg
from redis.asyncio import Redis

from realtime.keys import Keys
from realtime.scripts import Scripts
from rollups.breakdowns import Bounds
from rollups.drain import drain_all
from rollups.faults import Fault, no_fault
from rollups.flush import flush_all
from rollups.locks import Locking


async def drain_and_flush(redis: Redis, pool: asyncpg.Pool, keys: Keys, scripts: Scripts, *,
                          consumer: str, locking: Locking = Locking.TRY,
                          known_months: set[dt.date] | None = None,
                          bounds: dict[int, Bounds] | None = None,
                          fault: Fault = no_fault) -> tuple[int, int]:
    """Stores the buffered raw events, then flushes the counters: (events, tenant-days)."""
    events = await drain_all(redis, pool, keys, scripts, consumer=consumer, locking=locking,
                             known_months=known_months, bounds=bounds, fault=fault)
    rollups = await flush_all(redis, pool, keys, scripts, locking=locking, fault=fault)
    return events, rollups
