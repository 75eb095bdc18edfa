"""Retention: raw events older than RETENTION_DAYS go by whole partitions; rollups stay
(daily and breakdown rollups alike); the breakdowns' working sets of visitors go once their
day is over everywhere (WORKING_SET_DAYS)."""

from __future__ import annotations

import datetime as dt
import re

import asyncpg

from rollups.drain import next_month

_PARTITION = re.compile(r"^events_(\d{4})_(\d{2})$")
FLUSH_IDS_KEPT_DAYS = 30
# A tenant's local day is at most a day behind UTC's: days before yesterday (UTC) are over.
WORKING_SET_DAYS = 1


async def drop_expired(conn: asyncpg.Connection, now: dt.datetime,
                       retention_days: int) -> list[str]:
    """Drops partitions whose every event is older than the retention; returns their names."""
    cutoff = now.astimezone(dt.UTC).date() - dt.timedelta(days=retention_days)
    names = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent
           WHERE p.relname = 'events'"""
    )
    dropped = []
    for (name,) in names:
        match = _PARTITION.match(name)
        if match and next_month(dt.date(int(match[1]), int(match[2]), 1)) <= cutoff:
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            dropped.append(name)
    # Batch ids only guard against replays of recent flushes.
    await conn.execute(
        "DELETE FROM applied_flushes WHERE applied_at < $1",
        now - dt.timedelta(days=FLUSH_IDS_KEPT_DAYS),
    )
    over = now.astimezone(dt.UTC).date() - dt.timedelta(days=WORKING_SET_DAYS)
    await conn.execute("DELETE FROM breakdown_visitors WHERE day < $1", over)
    return dropped
