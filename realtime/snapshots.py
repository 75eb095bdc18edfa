"""A tenant's live numbers: today's running totals and visitor sketches, in one script call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from realtime.days import local_day
from realtime.event_types import LIVE
from realtime.keys import Keys

# The live totals fields live_snapshot.lua reads, and the names the contract gives them.
TOTAL_FIELDS = tuple(t.counter for t in LIVE)
LIVE_NAMES = tuple(t.live for t in LIVE)
NO_COUNTS = (0,) * len(LIVE)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Absolute values for the tenant's local day; `counts` follow the event-type table's
    live counters (LIVE_NAMES)."""

    visitors_today: int = 0
    active_visitors: int = 0
    counts: tuple[int, ...] = NO_COUNTS

    def as_dict(self) -> dict[str, int]:
        counts = dict(zip(LIVE_NAMES, self.counts, strict=True))
        return {"visitors_today": self.visitors_today, **counts,
                "active_visitors": self.active_visitors}


# Batches go out this many scripts at a time: enough to overlap round trips, few enough
# not to drain the client's connection pool.
CONCURRENCY = 32


async def snapshots(redis: Redis | RedisCluster, script: AsyncScript, keys: Keys,
                    tenants: Sequence[tuple[int, ZoneInfo]], now: float) -> list[Snapshot]:
    """One snapshot per (tenant, timezone), in order; each is one script call (one round
    trip, one hash slot), sent concurrently rather than pipelined so it runs on a cluster."""
    minute = int(now // 60)

    async def one(tenant_id: int, timezone: ZoneInfo) -> Snapshot:
        day = local_day(now, timezone)
        today, active, *totals = await script(
            keys=[keys.totals(tenant_id, day), keys.day_visitors(tenant_id, day),
                  *keys.active_visitors(tenant_id, minute)],
            args=TOTAL_FIELDS, client=redis,
        )
        return Snapshot(today, active, tuple(int(v or 0) for v in totals))

    found: list[Snapshot] = []
    for start in range(0, len(tenants), CONCURRENCY):
        batch = tenants[start:start + CONCURRENCY]
        found.extend(await asyncio.gather(*(one(t, z) for t, z in batch)))
    return found


async def snapshot(redis: Redis | RedisCluster, script: AsyncScript, keys: Keys, tenant_id: int,
                   timezone: ZoneInfo, now: float) -> Snapshot:
    return (await snapshots(redis, script, keys, [(tenant_id, timezone)], now))[0]
