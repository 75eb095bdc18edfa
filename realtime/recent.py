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


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")


async def buffered_events(redis: Redis, keys: Keys, tenant_id: int, limit: int = 20,
                          depth: int = SCAN_DEPTH) -> list[RecentEvent]:
    """Newest first; only what the stream still holds (the drain deletes what it stored)."""
    tenant = str(tenant_id).encode()
    shard = keys.shard_of(tenant_id)
    found: list[RecentEvent] = []
    entries = await redis.xrevrange(keys.events(shard), count=depth)
    for entry_id, fields in entries:
        if fields.get(b"tenant") != tenant:
            continue
        try:
            metadata = orjson.loads(fields.get(b"meta") or b"{}")
        except orjson.JSONDecodeError:
            metadata = {}
        found.append(RecentEvent(
            id=f"{shard}:{_text(entry_id)}",  # the id the drain stores it under
            event_type=_text(fields.get(b"type")),
            ts=int(fields.get(b"ts") or 0),
            metadata=metadata if isinstance(metadata, dict) else {},
            page=_text(fields.get(b"ref")),
            user_agent=_text(fields.get(b"ua")),
        ))
        if len(found) >= limit:
            break
    return found
