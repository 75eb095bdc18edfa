"""Periods of the tenant's calendar and the /stats numbers over one: totals, the same totals
for the period just before, and a series by hour, day or month.

A period is a range of the tenant's local days. Visitors and leads over several days are the
union of the days' sketches (counted by Redis, like the week of rollups.summaries), never a
sum. The hourly series of `today` and `yesterday` is counted from the raw events in Postgres
(one or two days of one tenant, on the (tenant_id, occurred_at) index): a visitor there is a
(daily-salted address hash, user agent) pair, which is what the day's sketch counts too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import asyncpg

from realtime import keys as k
from realtime.event_types import EVENT_TYPES, LEADS, SERIES, TIME_MS, TIMED
from realtime.scripts import Scripts
from rollups.summaries import count_union

PERIODS = ("today", "yesterday", "7d", "30d", "month", "last_month", "12mo", "custom")
DEFAULT_PERIOD = "7d"
# The dashboard's period picker: every named period (custom ranges are for the API).
PERIOD_LABELS: tuple[tuple[str, str], ...] = (
    ("today", "Today"), ("yesterday", "Yesterday"), ("7d", "Last 7 days"),
    ("30d", "Last 30 days"), ("month", "This month"), ("last_month", "Last month"),
    ("12mo", "Last 12 months"))
MAX_DAYS = 400

# Counters shown as totals: every event type's but the timed one's, which becomes an average.
TOTAL_COUNTERS: tuple[str, ...] = tuple(t.counter for t in EVENT_TYPES if not t.timed)
LEAD_TYPES: list[str] = [t.name for t in LEADS]
SERIES_COLUMNS: tuple[str, ...] = ("visitors", *(t.counter for t in SERIES), "leads")


class PeriodError(ValueError):
    """A period the query cannot mean; the message says why."""


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date  # inclusive
    unit: str  # "hour", "day" or "month": the series' step

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def _months_back(day: dt.date, months: int) -> dt.date:
    """The first day of the month `months` before `day`'s."""
    index = day.year * 12 + day.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def _parse_day(text: str | None, name: str) -> dt.date:
    if not text:
        raise PeriodError(f"period=custom needs `{name}` (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"`{name}` must be a date as YYYY-MM-DD, not {text[:40]!r}") from None


def resolve(name: str | None, first: str | None, last: str | None,
            today: dt.date) -> tuple[Period, Period]:
    """The period a query names and the period it is compared with; PeriodError if none."""
    name = DEFAULT_PERIOD if name is None else name
    if name not in PERIODS:
        raise PeriodError(f"unknown period {name[:40]!r}; one of: {', '.join(PERIODS)}")
    if name != "custom" and (first is not None or last is not None):
        raise PeriodError("`from` and `to` go with period=custom only")
    if name == "custom":
        start, end = _parse_day(first, "from"), _parse_day(last, "to")
        if start > end:
            raise PeriodError("`from` is after `to`")
        if (end - start).days + 1 > MAX_DAYS:
            raise PeriodError(f"a custom period spans at most {MAX_DAYS} days")
        period = Period(start, end, "day")
    elif name == "today":
        period = Period(today, today, "hour")
    elif name == "yesterday":
        period = Period(today - dt.timedelta(days=1), today - dt.timedelta(days=1), "hour")
    elif name in ("7d", "30d"):
        period = Period(today - dt.timedelta(days=int(name[:-1]) - 1), today, "day")
    elif name == "month":
        period = Period(today.replace(day=1), today, "day")
    elif name == "last_month":
        period = Period(_months_back(today, 1), today.replace(day=1) - dt.timedelta(days=1),
                        "day")
    else:  # 12mo: this month so far and the 11 before it; compared with the 12 months before
        start = _months_back(today, 11)
        return (Period(start, today, "month"),
                Period(_months_back(start, 12), start - dt.timedelta(days=1), "month"))
    previous_last = period.first - dt.timedelta(days=1)
    return period, Period(previous_last - dt.timedelta(days=period.days - 1), previous_last,
                          period.unit)


ROWS_SQL = f"""
SELECT day, {", ".join(TOTAL_COUNTERS)}, {TIMED.counter}, {TIME_MS},
       visitors, visitors_hll, leads, leads_hll
FROM daily_rollups
WHERE tenant_id = $1 AND day BETWEEN $2 AND $3
"""

_SERIES_COUNTS = "".join(
    f"count(*) FILTER (WHERE event_type = '{t.name}') AS {t.counter}, " for t in SERIES)
HOURS_SQL = f"""
SELECT to_char(date_trunc('hour', occurred_at AT TIME ZONE $2), 'YYYY-MM-DD"T"HH24:00') AS hour,
       count(DISTINCT (ip_hash, user_agent)) AS visitors,
       {_SERIES_COUNTS}
       count(DISTINCT (ip_hash, user_agent)) FILTER (WHERE event_type = ANY($5)) AS leads
FROM events
WHERE tenant_id = $1 AND occurred_at >= $3 AND occurred_at < $4
GROUP BY 1
"""


def local_midnight(day: dt.date, timezone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), timezone)


def local_hours(day: dt.date, timezone: ZoneInfo) -> list[str]:
    """The day's wall-clock hours, in order: 23 on a spring-forward day; on a fall-back day
    the repeated hour is one entry (its two real hours counted together)."""
    start = local_midnight(day, timezone).astimezone(dt.UTC)
    end = local_midnight(day + dt.timedelta(days=1), timezone).astimezone(dt.UTC)
    hours: list[str] = []
    instant = start
    while instant < end:
        label = instant.astimezone(timezone).strftime("%Y-%m-%dT%H:00")
        if label not in hours:
            hours.append(label)
        instant += dt.timedelta(hours=1)
    return hours


async def _union(scripts: Scripts, keys: k.Keys, tenant_id: int, rows: list[asyncpg.Record],
                 column: str) -> int:
    """Unique visitors (or leads) over the rows' days: at least any one day's count."""
    sketches = [row[f"{column}_hll"] for row in rows if row[f"{column}_hll"]]
    days_max = max((row[column] for row in rows), default=0)
    if len(sketches) < 2:
        return sum(row[column] for row in rows)  # at most one day has any
    return max(days_max, await count_union(scripts, keys, tenant_id, sketches))


async def totals(scripts: Scripts, keys: k.Keys, tenant_id: int,
                 rows: list[asyncpg.Record]) -> dict[str, int | float]:
    visitors, leads = await asyncio.gather(_union(scripts, keys, tenant_id, rows, "visitors"),
                                           _union(scripts, keys, tenant_id, rows, "leads"))

    def total(column: str) -> int:
        return sum(row[column] for row in rows)

    timed = total(TIMED.counter)
    return {
        "visitors": visitors,
        **{counter: total(counter) for counter in TOTAL_COUNTERS},
        "avg_time_on_page": round(total(TIME_MS) / 1000 / timed) if timed else 0,
        "leads": leads,
        "conversion_rate": round(leads / visitors, 4) if visitors else 0,
    }


def _days(period: Period) -> list[dt.date]:
    return [period.first + dt.timedelta(days=i) for i in range(period.days)]


async def series(pool: asyncpg.Pool, scripts: Scripts, keys: k.Keys, tenant_id: int,
                 timezone: ZoneInfo, period: Period,
                 rows: dict[dt.date, asyncpg.Record]) -> list[dict]:
    if period.unit == "hour":
        counted = {row["hour"]: row for row in await pool.fetch(
            HOURS_SQL, tenant_id, timezone.key, local_midnight(period.first, timezone),
            local_midnight(period.last + dt.timedelta(days=1), timezone), LEAD_TYPES)}
        return [
            {"hour": hour, **({column: counted[hour][column] if hour in counted else 0
                               for column in SERIES_COLUMNS})}
            for day in _days(period) for hour in local_hours(day, timezone)
        ]
    if period.unit == "day":
        return [
            {"date": day.isoformat(),
             **{column: rows[day][column] if day in rows else 0
                for column in SERIES_COLUMNS}}
            for day in _days(period)
        ]
    months: dict[str, list[asyncpg.Record]] = {}
    for day in _days(period):
        months.setdefault(f"{day.year:04d}-{day.month:02d}", []).extend(
            [rows[day]] if day in rows else [])

    async def month(label: str, month_rows: list[asyncpg.Record]) -> dict:
        visitors, leads = await asyncio.gather(
            _union(scripts, keys, tenant_id, month_rows, "visitors"),
            _union(scripts, keys, tenant_id, month_rows, "leads"))
        return {"month": label, "visitors": visitors,
                **{t.counter: sum(row[t.counter] for row in month_rows) for t in SERIES},
                "leads": leads}

    return list(await asyncio.gather(*(month(label, r) for label, r in months.items())))


async def stats(pool: asyncpg.Pool, scripts: Scripts, keys: k.Keys, tenant_id: int,
                timezone: ZoneInfo, period: Period, previous: Period) -> dict:
    """The /stats document's `data` for `period`, compared with `previous`."""
    rows = {row["day"]: row for row in await pool.fetch(
        ROWS_SQL, tenant_id, previous.first, period.last)}

    def within(p: Period) -> list[asyncpg.Record]:
        return [row for day, row in rows.items() if p.first <= day <= p.last]

    current_totals, previous_totals, steps = await asyncio.gather(
        totals(scripts, keys, tenant_id, within(period)),
        totals(scripts, keys, tenant_id, within(previous)),
        series(pool, scripts, keys, tenant_id, timezone, period, rows),
    )
    return {
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat(),
                   "timezone": timezone.key},
        "totals": current_totals,
        "previous": previous_totals,
        "series": steps,
        "unit": period.unit,  # what each step of the series is: hour, day or month
    }
