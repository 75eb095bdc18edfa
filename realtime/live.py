"""A tenant's live numbers: today's running totals and visitor sketches, read in one round trip."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from realtime.keys import Keys

# Fields of the live totals hash (see scripts/track.lua), in the order the snapshot reads them.
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


async def snapshots(redis: Redis, keys: Keys, tenants: Sequence[tuple[int, ZoneInfo]],
                    now: float) -> list[Snapshot]:
    """One snapshot per (tenant, timezone), in order, from one pipelined round trip.

    Not a MULTI: each tenant's reads sit in one hash slot, but a batch spans tenants, and the
    values are absolute, so the next update mends any skew between two reads.
    """
    if not tenants:
        return []
    minute = int(now // 60)
    async with redis.pipeline(transaction=False) as pipe:
        for tenant_id, timezone in tenants:
            day = local_day(now, timezone)
            pipe.hmget(keys.totals(tenant_id, day), TOTAL_FIELDS)
            pipe.pfcount(keys.day_visitors(tenant_id, day))
            pipe.pfcount(*keys.active_visitors(tenant_id, minute))
        replies = await pipe.execute()
    found = []
    for index in range(len(tenants)):
        totals, today, active = replies[3 * index: 3 * index + 3]
        pageviews, whatsapp, call, toggles, qr, products = (int(v or 0) for v in totals)
        found.append(Snapshot(
            visitors_today=today, pageviews_today=pageviews, whatsapp_clicks=whatsapp,
            call_clicks=call, currency_toggles=toggles, qr_scans=qr, products_viewed=products,
            active_visitors=active,
        ))
    return found


async def snapshot(redis: Redis, keys: Keys, tenant_id: int, timezone: ZoneInfo,
                   now: float) -> Snapshot:
    return (await snapshots(redis, keys, [(tenant_id, timezone)], now))[0]
