"""Reading the daily rollups for the seed's two summary endpoints.

Days are the tenant's; the week's unique visitors are the union of the daily sketches,
counted by Redis (PFCOUNT over several sketches), never a sum of days. The response models
derive from the event-type table: which counters each endpoint shows, and under what name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, make_dataclass
from zoneinfo import ZoneInfo

import asyncpg

from realtime import keys as k
from realtime.days import local_day
from realtime.event_types import TIME_MS, TIMED, TODAY, WEEK
from realtime.scripts import Scripts
from rollups.sketches import count_unions

DAYS_IN_WEEK = 7

_WEEK_COLUMNS = ", ".join(t.counter for t in WEEK)
WEEK_SQL = f"""
SELECT day, {_WEEK_COLUMNS}, {TIMED.counter}, {TIME_MS}, visitors, visitors_hll
FROM daily_rollups
WHERE tenant_id = $1 AND day BETWEEN $2 AND $3
"""
_TODAY_COLUMNS = ", ".join(t.counter for t in TODAY)
TODAY_SQL = f"""
SELECT visitors, {_TODAY_COLUMNS} FROM daily_rollups WHERE tenant_id = $1 AND day = $2
"""


@dataclass(frozen=True)
class DayVisitors:
    date: str
    visitors: int


Summary = make_dataclass(
    "Summary",
    [("visitors_today", int), ("visitors_week", int), *((t.counter, int) for t in WEEK),
     ("avg_time_on_page", int), ("last_7_days", list[DayVisitors])],
    frozen=True,
)
Summary.__doc__ = "Today, the last 7 days and the week's totals, in the tenant's timezone."

Today = make_dataclass(
    "Today", [("visitors_today", int), *((t.today, int) for t in TODAY)], frozen=True,
)
Today.__doc__ = "Today's unique visitors and the counters of the day the endpoint shows."


async def summary(pool: asyncpg.Pool, scripts: Scripts, keys: k.Keys, tenant_id: int,
                  timezone: ZoneInfo, now: float) -> Summary:
    today = local_day(now, timezone)
    first = today - dt.timedelta(days=DAYS_IN_WEEK - 1)
    rows = {row["day"]: row for row in await pool.fetch(WEEK_SQL, tenant_id, first, today)}
    sketches = [row["visitors_hll"] for row in rows.values() if row["visitors_hll"]]
    if len(sketches) > 1:
        [week_visitors] = await count_unions(scripts, keys, tenant_id, [sketches])
    else:
        week_visitors = sum(row["visitors"] for row in rows.values())

    def total(column: str) -> int:
        return sum(row[column] for row in rows.values())

    timed = total(TIMED.counter)
    days = [first + dt.timedelta(days=i) for i in range(DAYS_IN_WEEK)]
    return Summary(
        visitors_today=rows[today]["visitors"] if today in rows else 0,
        # Every day's visitors are in the union, even when the estimate says otherwise.
        visitors_week=max([week_visitors, *(row["visitors"] for row in rows.values())]),
        **{t.counter: total(t.counter) for t in WEEK},
        avg_time_on_page=round(total(TIME_MS) / 1000 / timed) if timed else 0,
        last_7_days=[
            DayVisitors(day.isoformat(), rows[day]["visitors"] if day in rows else 0)
            for day in days
        ],
    )


async def today_summary(pool: asyncpg.Pool, tenant_id: int, timezone: ZoneInfo,
                        now: float) -> Today:
    row = await pool.fetchrow(TODAY_SQL, tenant_id, local_day(now, timezone))
    return Today(row["visitors"] if row else 0,
                 *(row[t.counter] if row else 0 for t in TODAY))
