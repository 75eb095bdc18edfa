"""The ingestion hot path: each event is checked and counted atomically by scripts/track.lua,
in one Redis call with the events the process takes in at the same moment (batching.py)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from zoneinfo import ZoneInfo

import orjson

from realtime import keys as k
from realtime import stream
from realtime.batching import Batcher
from realtime.days import local_day
from realtime.event_types import BY_NAME
from realtime.geo import Countries
from realtime.privacy import DailySalts, client_name, ip_hash, visitor_hash
from realtime.validation import TrackRequest, seconds_on_page

MAX_USER_AGENT = 512
MAX_REFERRER = 1024


class Outcome(Enum):
    ACCEPTED = "accepted"
    RATE_LIMITED = "rate_limited"  # the tenant's limit
    CLIENT_LIMITED = "client_limited"  # the limit of one client address for the tenant
    BUFFER_FULL = "buffer_full"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    retry_after: int = 0


@dataclass(frozen=True)
class Sender:
    """What the request tells about who sent the event; the address stays in memory."""

    address: str
    user_agent: str
    referrer: str


def track_limits(rate_limit: int, client_rate_limit: int, stream_bound: int) -> str:
    """The first argument of every track.lua call: the limits, formatted once a process.
    `client_rate_limit` 0 is none."""
    return (f"{rate_limit} {client_rate_limit} {k.RATE_WINDOW_MS} {stream_bound} "
            f"{k.DAY_TTL_SECONDS} {k.TOTALS_TTL_SECONDS} {k.MINUTE_TTL_SECONDS} "
            f"{k.HEALTH_TTL_SECONDS}")


@dataclass(frozen=True)
class Ingestor:
    keys: k.Keys
    salts: DailySalts
    visitor_key: bytes
    calls: Batcher  # of track.lua, with track_limits(...) as its shared argument
    # A cluster runs one script call per hash slot, so only a shard's events share one;
    # a single Redis takes every shard's in one.
    per_shard: bool
    countries: Countries = field(default_factory=Countries)

    async def ingest(self, event: TrackRequest, metadata: bytes, sender: Sender,
                     timezone: ZoneInfo, now: float) -> Result:
        """Raises TimeoutError past the batcher's timeout (the event may still be recorded),
        or what Redis raised."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.calls.timeout
        salt = self.salts.cached(now)
        if salt is None:  # the process's first event, or the day's: one Redis call
            async with asyncio.timeout_at(deadline):
                salt = await self.salts.for_time(now)
        tenant = event.tenant_id
        kind = BY_NAME[event.event_type]
        day = local_day(now, timezone)
        minute = int(now // 60)
        now_ms = int(now * 1000)
        user_agent = sender.user_agent[:MAX_USER_AGENT]
        visitor = visitor_hash(self.visitor_key, tenant, sender.address, user_agent)
        time_ms = ""
        if kind.timed:
            # Decimal of the shortest repr: the same milliseconds Postgres computes from the
            # stored JSON, so a rebuild from raw events agrees to the millisecond.
            time_ms = str(math.floor(Decimal(repr(seconds_on_page(event))) * 1000))
        shard = self.keys.shard_of(tenant)
        address_hash = ip_hash(salt, sender.address)
        # The client the per-address limit counts: an IPv6 /64 is one, as for logins.
        client = client_name(sender.address)
        client_hash = address_hash if client == sender.address else ip_hash(salt, client)
        entry = stream.encode(stream.RawEvent(
            tenant, event.event_type, now_ms, orjson.Fragment(metadata), user_agent,
            sender.referrer[:MAX_REFERRER], address_hash,
            self.countries.country(sender.address),
        ))
        reply = await self.calls.call(
            shard if self.per_shard else 0,
            [
                self.keys.rate(tenant),
                self.keys.pending_counters(tenant, day),
                self.keys.totals(tenant, day),
                self.keys.day_visitors(tenant, day),
                self.keys.minute_visitors(tenant, minute),
                self.keys.events(shard),
                self.keys.dirty(shard),
                self.keys.day_leads(tenant, day),
                self.keys.address_rate(tenant, client_hash),
                self.keys.ingest_health(tenant, minute),
            ],
            [
                now_ms, kind.counter, time_ms, visitor, k.dirty_member(tenant, day),
                self.keys.channel(tenant), entry, "1" if kind.lead else "",
            ],
            deadline,
        )
        if reply[0] == 1:
            return Result(Outcome.ACCEPTED)
        if reply[0] == 0:
            return Result(Outcome.RATE_LIMITED, retry_after=max(1, math.ceil(reply[1] / 1000)))
        if reply[0] == 3:
            return Result(Outcome.CLIENT_LIMITED, retry_after=max(1, math.ceil(reply[1] / 1000)))
        return Result(Outcome.BUFFER_FULL)
