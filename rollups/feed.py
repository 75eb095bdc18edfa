"""A tenant's latest events for the dashboard's feed: still buffered in Redis, or drained."""

from __future__ import annotations

import asyncpg
import orjson
from redis.asyncio import Redis

from realtime.keys import Keys
from realtime.stream import RecentEvent, buffered_events

STORED_SQL = """
SELECT id, event_type, occurred_at, metadata::text AS metadata, referrer, user_agent
FROM events
WHERE tenant_id = $1
ORDER BY occurred_at DESC
LIMIT $2
"""


async def stored_events(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int,
                        limit: int) -> list[RecentEvent]:
    rows = await conn.fetch(STORED_SQL, tenant_id, limit)
    events = []
    for row in rows:
        metadata = orjson.loads(row["metadata"])
        events.append(RecentEvent(
            id=row["id"],
            event_type=row["event_type"],
            ts=int(row["occurred_at"].timestamp() * 1000),
            metadata=metadata if isinstance(metadata, dict) else {},
            page=row["referrer"],
            user_agent=row["user_agent"],
        ))
    return events


async def recent_events(pool: asyncpg.Pool, redis: Redis, keys: Keys, tenant_id: int,
                        limit: int = 20) -> list[RecentEvent]:
    """Newest first. An entry drained while we read may be in both places: it counts once."""
    buffered = await buffered_events(redis, keys, tenant_id, limit)
    stored = [] if len(buffered) >= limit else await stored_events(pool, tenant_id, limit)
    unique = {event.id: event for event in [*stored, *buffered]}
    return sorted(unique.values(), key=lambda e: (e.ts, e.id), reverse=True)[:limit]
