"""The last few events of a tenant still buffered in its shard's stream (not yet drained)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from realtime.keys import Keys

# A shard's stream interleaves tenants: look this far back for the tenant's own events.
SCAN_DEPTH = 2000


@dataclass(frozen=True)
class RecentEvent:
    id: str
    event_type: str
    ts: int
    metadata: dict[str, Any]
    page: str
    user_agent: str


def _parse(shard: int, entry_id: bytes,
           fields: dict[bytes, bytes]) -> tuple[int, RecentEvent] | None:
    try:
        event = orjson.loads(fields[b"e"])  # one JSON field per entry (see realtime.ingest)
        metadata = event.get("meta")
        return event["tenant"], RecentEvent(
            id=f"{shard}:{entry_id.decode()}",  # the id the drain stores it under
            event_type=str(event["type"]),
            ts=int(event["ts"]),
            metadata=metadata if isinstance(metadata, dict) else {},
            page=str(event.get("ref", "")),
            user_agent=str(event.get("ua", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError, orjson.JSONDecodeError):
        return None  # an entry the drain will deal with; the feed just skips it


async def buffered_events(redis: Redis, keys: Keys, tenant_id: int, limit: int = 20,
                          depth: int = SCAN_DEPTH) -> list[RecentEvent]:
    """Newest first; only what the stream still holds (the drain deletes what it stored)."""
    shard = keys.shard_of(tenant_id)
    found: list[RecentEvent] = []
    for entry_id, fields in await redis.xrevrange(keys.events(shard), count=depth):
        parsed = _parse(shard, entry_id, fields) if fields else None
        if parsed is None or parsed[0] != tenant_id:
            continue
        found.append(parsed[1])
        if len(found) >= limit:
            break
    return found
