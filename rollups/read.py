"""Reading the daily rollups for the dashboard endpoints.

Days are the tenant's; the week's unique visitors are the union of the daily sketches,
counted by Redis (PFCOUNT over several sketches), never a sum of days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import asyncpg

from realtime import keys as k
from realtime.scripts import Scripts

WEEK = 7

WEEK_SQL = """
SELECT day, whatsapp_clicks, call_clicks, currency_toggles, qr_scans, product_clicks,
       time_on_page_count, time_on_page_ms, visitors, visitors_hll
FROM daily_rollups
WHERE tenant_id = $1 AND day BETWEEN $2 AND $3
"""


@dataclass(frozen=True)
class DayVisitors:
    date: str
    visitors: int


@dataclass(frozen=True)
class Summary:
    visitors_today: int
    visitors_week: int
    whatsapp_clicks: int
    call_clicks: int
    currency_toggles: int
    qr_scans: int
    avg_time_on_page: int
    last_7_days: list[DayVisitors]


@dataclass(frozen=True)
class Today:
    visitors_today: int
    whatsapp_clicks: int
    qr_scans: int
    products_viewed: int


def local_today(timezone: ZoneInfo, now: float) -> dt.date:
    return dt.datetime.fromtimestamp(now, timezone).date()


async def count_union(scripts: Scripts, keys: k.Keys, tenant_id: int, sketches: list[bytes]) -> int:
    shard = keys.shard_of(tenant_id)
    return int(await scripts.union_count(
        keys=[keys.scratch(shard, i) for i in range(len(sketches))], args=sketches,
    ))


async def summary(pool: asyncpg.Pool, scripts: Scripts, keys: k.Keys, tenant_id: int,
                  timezone: ZoneInfo, now: float) -> Summary:
    today = local_today(timezone, now)
    first = today - dt.timedelta(days=WEEK - 1)
    rows = {row["day"]: row for row in await pool.fetch(WEEK_SQL, tenant_id, first, today)}
    sketches = [row["visitors_hll"] for row in rows.values() if row["visitors_hll"]]
    if len(sketches) > 1:
        week_visitors = await count_union(scripts, keys, tenant_id, sketches)
    else:
        week_visitors = sum(row["visitors"] for row in rows.values())

    def total(column: str) -> int:
        return sum(row[column] for row in rows.values())

    timed = total("time_on_page_count")
    days = [first + dt.timedelta(days=i) for i in range(WEEK)]
    return Summary(
        visitors_today=rows[today]["visitors"] if today in rows else 0,
        # Every day's visitors are in the union, even when the estimate says otherwise.
        visitors_week=max([week_visitors, *(row["visitors"] for row in rows.values())]),
        whatsapp_clicks=total("whatsapp_clicks"),
        call_clicks=total("call_clicks"),
        currency_toggles=total("currency_toggles"),
        qr_scans=total("qr_scans"),
        avg_time_on_page=round(total("time_on_page_ms") / 1000 / timed) if timed else 0,
        last_7_days=[
            DayVisitors(day.isoformat(), rows[day]["visitors"] if day in rows else 0)
            for day in days
        ],
    )


async def today_summary(pool: asyncpg.Pool, tenant_id: int, timezone: ZoneInfo,
                        now: float) -> Today:
    row = await pool.fetchrow(
        """SELECT visitors, whatsapp_clicks, qr_scans, product_clicks FROM daily_rollups
           WHERE tenant_id = $1 AND day = $2""",
        tenant_id, local_today(timezone, now),
    )
    if row is None:
        return Today(0, 0, 0, 0)
    return Today(row["visitors"], row["whatsapp_clicks"], row["qr_scans"], row["product_clicks"])
