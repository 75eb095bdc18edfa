"""Postgres advisory locks that keep two schedulers from working one shard at once.

Only an optimisation: correctness rests on idempotent writes (event ids, batch ids). A lock
dies with its connection, so a killed scheduler never leaves one behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from enum import Enum

import asyncpg


class Locking(Enum):
    TRY = "try"    # skip the shard when another process holds it (the scheduler)
    WAIT = "wait"  # wait for it (`analytics flush`, which must see everything flushed)
    NONE = "none"  # no lock (tests that race two flushers on purpose)


@contextlib.asynccontextmanager
async def shard_lock(conn: asyncpg.Connection, lock_class: int, shard: int,
                     locking: Locking) -> AsyncIterator[bool]:
    if locking is Locking.NONE:
        yield True
        return
    if locking is Locking.WAIT:
        await conn.execute("SELECT pg_advisory_lock($1, $2)", lock_class, shard)
        held = True
    else:
        held = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", lock_class, shard)
    try:
        yield held
    finally:
        if held and not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1, $2)", lock_class, shard)
