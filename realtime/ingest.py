"""The ingestion hot path: one accepted event is one atomic Redis call (scripts/track.lua)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from functools import cached_property
from zoneinfo import ZoneInfo

import orjson
from redis.commands.core import AsyncScript

from realtime import keys as k
from realtime import stream
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


@dataclass(frozen=True)
class Ingestor:
    keys: k.Keys
    salts: DailySalts
    visitor_key: bytes
    rate_limit: int
    client_rate_limit: int  # 0: none
    stream_bound: int
    script: AsyncScript
    countries: Countries = field(default_factory=Countries)

    @cached_property
    def limits(self) -> str:
        """The script's fixed limits, formatted once per process rather than per event."""
        return (f"{self.rate_limit} {self.client_rate_limit} {k.RATE_WINDOW_MS} "
                f"{self.stream_bound} {k.DAY_TTL_SECONDS} {k.TOTALS_TTL_SECONDS} "
                f"{k.MINUTE_TTL_SECONDS}")

    async def ingest(self, event: TrackRequest, metadata: bytes, sender: Sender,
                     timezone: ZoneInfo, now: float) -> Result:
        tenant = event.tenant_id
        kind = BY_NAME[event.event_type]
        day = local_day(now, timezone)
        minute = int(now // 60)
        now_ms = int(now * 1000)
        salt = await self.salts.for_time(now)
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
        reply = await self.script(
            keys=[
                self.keys.rate(tenant),
                self.keys.pending_counters(tenant, day),
                self.keys.totals(tenant, day),
                self.keys.day_visitors(tenant, day),
                self.keys.minute_visitors(tenant, minute),
                self.keys.events(shard),
                self.keys.dirty(shard),
                self.keys.day_leads(tenant, day),
                self.keys.address_rate(tenant, client_hash),
            ],
            args=[
                now_ms, self.limits, kind.counter, time_ms, visitor,
                k.dirty_member(tenant, day), self.keys.channel(tenant), entry,
                "1" if kind.lead else "",
            ],
        )
        if reply[0] == 1:
            return Result(Outcome.ACCEPTED)
        if reply[0] == 0:
            return Result(Outcome.RATE_LIMITED, retry_after=max(1, math.ceil(reply[1] / 1000)))
        if reply[0] == 3:
            return Result(Outcome.CLIENT_LIMITED, retry_after=max(1, math.ceil(reply[1] / 1000)))
        return Result(Outcome.BUFFER_FULL)
