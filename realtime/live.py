"""A tenant's live numbers: today's running totals and visitor sketches, in one script call."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from realtime.keys import Keys

# Fields of the live totals hash (see scripts/track.lua), in the order live_snapshot.lua reads them.
TOTAL_FIELDS = (
    "pageviews", "whatsapp_clicks", "call_clicks", "currency_toggles", "qr_scans", "product_clicks",
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Absolute values for the tenant's local day, as the contract names them."""

    visitors_today: int = 0
    pageviews_today: int = 0
    whatsapp_clicks: int = 0
    call_clicks: int = 0
    currency_toggles: int = 0
    qr_scans: int = 0
    products_viewed: int = 0
    active_visitors: int = 0

    def as_dict(self) -> dict[str, int]:
        # Not dataclasses.asdict: it deep-copies, and this runs for every update.
        return {name: getattr(self, name) for name in self.__slots__}


def local_day(now: float, timezone: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(now, dt.UTC).astimezone(timezone).date()


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
        reply = await script(
            keys=[keys.totals(tenant_id, day), keys.day_visitors(tenant_id, day),
                  *keys.active_visitors(tenant_id, minute)],
            args=TOTAL_FIELDS, client=redis,
        )
        today, active, *totals = reply
        pageviews, whatsapp, call, toggles, qr, products = (int(v or 0) for v in totals)
        return Snapshot(
            visitors_today=today, pageviews_today=pageviews, whatsapp_clicks=whatsapp,
            call_clicks=call, currency_toggles=toggles, qr_scans=qr, products_viewed=products,
            active_visitors=active,
        )

    found: list[Snapshot] = []
    for start in range(0, len(tenants), CONCURRENCY):
        batch = tenants[start:start + CONCURRENCY]
        found.extend(await asyncio.gather(*(one(t, z) for t, z in batch)))
    return found


async def snapshot(redis: Redis | RedisCluster, script: AsyncScript, keys: Keys, tenant_id: int,
                   timezone: ZoneInfo, now: float) -> Snapshot:
    return (await snapshots(redis, script, keys, [(tenant_id, timezone)], now))[0]
