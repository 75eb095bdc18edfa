"""The raw event as it waits in its shard's Redis stream: the one codec of a stream entry,
which the ingest path writes (and publishes to live dashboards), the drain stores in
Postgres and the dashboard's feed reads while it is still buffered.

An entry has one field, `e`, holding compact JSON with short keys:
`{"tenant", "type", "ts" (ms), "meta", "ua", "ref", "ip", "cc"}` (`ip` is the salted hash,
`cc` the two-letter country of the address, `ZZ` when unknown or in entries written before
it existed).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from realtime.keys import SHARDS, Keys

FIELD = b"e"
# A shard's stream interleaves tenants: look this far back for the tenant's own events.
SCAN_DEPTH = 2000


@dataclass(frozen=True, slots=True)
class RawEvent:
    tenant_id: int
    event_type: str
    ts: int  # milliseconds since the epoch
    metadata: Any  # a dict once decoded; the validated JSON (orjson.Fragment) when encoding
    user_agent: str
    referrer: str
    ip_hash: str
    country: str = "ZZ"


def encode(event: RawEvent) -> bytes:
    return orjson.dumps({
        "tenant": event.tenant_id, "type": event.event_type, "ts": event.ts,
        "meta": event.metadata, "ua": event.user_agent, "ref": event.referrer,
        "ip": event.ip_hash, "cc": event.country,
    })


def decode(data: bytes) -> RawEvent:
    """Raises ValueError for an entry that is not one of ours."""
    try:
        e = orjson.loads(data)
        metadata = e.get("meta")
        return RawEvent(int(e["tenant"]), str(e["type"]), int(e["ts"]),
                        metadata if isinstance(metadata, dict) else {},
                        str(e.get("ua", "")), str(e.get("ref", "")), str(e.get("ip", "")),
                        str(e.get("cc", "ZZ"))[:2] or "ZZ")
    except (KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as error:
        raise ValueError(f"not a raw event entry: {error}") from None


def entry_id(shard: int, stream_id: bytes) -> str:
    """The id an entry is stored under in Postgres: unique across shards."""
    return f"{shard}:{stream_id.decode()}"


def feed_item(event: RawEvent) -> dict[str, Any]:
    """What the live socket's event frames show of an event."""
    return {"event_type": event.event_type, "ts": event.ts, "metadata": event.metadata,
            "referrer": event.referrer}


@dataclass(frozen=True)
class RecentEvent:
    """An event as the dashboard's feed lists it."""

    id: str
    event_type: str
    ts: int
    metadata: dict[str, Any]
    page: str
    user_agent: str


async def buffered_events(redis: Redis, keys: Keys, tenant_id: int, limit: int = 20,
                          depth: int = SCAN_DEPTH) -> list[RecentEvent]:
    """Newest first; only what the stream still holds (the drain deletes what it stored)."""
    shard = keys.shard_of(tenant_id)
    found: list[RecentEvent] = []
    for stream_id, fields in await redis.xrevrange(keys.events(shard), count=depth):
        try:
            event = decode(fields[FIELD])
        except (KeyError, ValueError):
            continue  # an entry the drain will deal with; the feed just skips it
        if event.tenant_id != tenant_id:
            continue
        found.append(RecentEvent(entry_id(shard, stream_id), event.event_type, event.ts,
                                 event.metadata, event.referrer, event.user_agent))
        if len(found) >= limit:
            break
    return found


async def buffer_depths(redis: Redis, keys: Keys) -> list[int]:
    """Raw events waiting in each shard's stream for the scheduler to store them."""
    return list(await asyncio.gather(*(redis.xlen(keys.events(s)) for s in range(SHARDS))))
