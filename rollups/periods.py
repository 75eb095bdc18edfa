"""Periods of the tenant's calendar and the /stats numbers over one: totals, the same totals
for the period just before, and a series by hour, day or month.

A period is a range of the tenant's local days. Visitors and leads over several days are the
union of the days' sketches (counted by Redis, like the week of rollups.summaries), never a
sum; a long period reads the unions of whole runs of its days that rollups.spans keeps. The
hourly series of `today` and `yesterday` is counted from the raw events in Postgres (one or
two days of one tenant, on the (tenant_id, occurred_at) index): a visitor there is a
(daily-salted address hash, user agent) pair, which is what the day's sketch counts too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import asyncpg

from realtime import keys as k
from realtime.event_types import EVENT_TYPES, LEADS, SERIES, TIME_MS, TIMED
from realtime.scripts import Scripts
from rollups import spans
from rollups.sketches import count_unions

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


def closed_parts(today: dt.date) -> list[spans.Span]:
    """The days before `today` of each named period of `today` and of the period before it:
    the runs rollups.spans builds ahead, so that each period is one span and today."""
    found = []
    for name in PERIODS:
        if name not in ("today", "yesterday", "custom"):
            for part in resolve(name, None, None, today):
                last = min(part.last, today - dt.timedelta(days=1))
                if part.first < last:
                    found.append((part.first, last))
    return found


ROWS_SQL = f"""
SELECT day, {", ".join(TOTAL_COUNTERS)}, {TIMED.counter}, {TIME_MS}, visitors, leads,
       visitors_hll IS NOT NULL AS visitors_sketched, leads_hll IS NOT NULL AS leads_sketched
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


UNIONS = ("visitors", "leads")


class Unions:
    """Unique visitors and leads over runs of days: the union of their days' sketches, read
    from the spans and single days that cover each run (rollups.spans), all counted by Redis
    in one call."""

    def __init__(self, runs: Iterable[tuple[dt.date, dt.date]]):
        self.runs = set(runs)
        self.rows: dict[dt.date, asyncpg.Record] = {}
        self.groups: dict[tuple[str, dt.date, dt.date], list[bytes]] = {}
        self.counts: dict[tuple[str, dt.date, dt.date], int] = {}

    async def load(self, conn: asyncpg.Connection, tenant_id: int) -> None:
        """The days' rows, and the sketches of the runs with more than one; in one snapshot,
        so that a span deleted meanwhile cannot drop out of a union."""
        first, last = min(r[0] for r in self.runs), max(r[1] for r in self.runs)
        self.rows = {row["day"]: row for row in await conn.fetch(ROWS_SQL, tenant_id, first,
                                                                 last)}
        built = await spans.built(conn, tenant_id, first, last)
        covers = {run: spans.pieces(*run, built) for run in self.runs}
        needed = [(run, column) for run in covers for column in UNIONS
                  if self._sketched(run, column) >= 2]
        days = sorted({d for run, _ in needed for d in covers[run][1]})
        parts = sorted({s for run, _ in needed for s in covers[run][0]})
        found = {(r["first_day"], r["last_day"]): r for r in await conn.fetch(
            spans.SKETCHES_SQL, tenant_id, days, [p[0] for p in parts],
            [p[1] for p in parts])} if needed else {}
        self.groups = {
            (column, *run): [found[piece][f"{column}_hll"] for piece in
                             [*covers[run][0], *((d, d) for d in covers[run][1])]
                             if piece in found]
            for run, column in needed}

    async def count(self, scripts: Scripts, keys: k.Keys, tenant_id: int) -> None:
        if self.groups:
            counted = await count_unions(scripts, keys, tenant_id, list(self.groups.values()))
            self.counts = dict(zip(self.groups, counted, strict=True))

    def _sketched(self, run: tuple[dt.date, dt.date], column: str) -> int:
        return sum(1 for day, row in self.rows.items()
                   if run[0] <= day <= run[1] and row[f"{column}_sketched"])

    def of(self, column: str, first: dt.date, last: dt.date) -> int:
        """Unique visitors (or leads) over the days: at least any one day's count."""
        days = [row[column] for day, row in self.rows.items() if first <= day <= last]
        if (column, first, last) not in self.counts:
            return sum(days)  # at most one day has a sketch
        return max(max(days, default=0), self.counts[(column, first, last)])


def totals(unions: Unions, period: Period) -> dict[str, int | float]:
    rows = [row for day, row in unions.rows.items() if period.first <= day <= period.last]
    visitors, leads = (unions.of(c, period.first, period.last) for c in UNIONS)

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


def _months(period: Period) -> dict[str, tuple[dt.date, dt.date]]:
    """The period's months (their days within it), by label."""
    months: dict[str, tuple[dt.date, dt.date]] = {}
    for day in _days(period):
        label = f"{day.year:04d}-{day.month:02d}"
        months[label] = (months.get(label, (day, day))[0], day)
    return months


async def hours(pool: asyncpg.Pool, tenant_id: int, timezone: ZoneInfo,
                period: Period) -> list[dict]:
    counted = {row["hour"]: row for row in await pool.fetch(
        HOURS_SQL, tenant_id, timezone.key, local_midnight(period.first, timezone),
        local_midnight(period.last + dt.timedelta(days=1), timezone), LEAD_TYPES)}
    return [
        {"hour": hour, **({column: counted[hour][column] if hour in counted else 0
                           for column in SERIES_COLUMNS})}
        for day in _days(period) for hour in local_hours(day, timezone)
    ]


def series(unions: Unions, period: Period) -> list[dict]:
    rows = unions.rows
    if period.unit == "day":
        return [
            {"date": day.isoformat(),
             **{column: rows[day][column] if day in rows else 0
                for column in SERIES_COLUMNS}}
            for day in _days(period)
        ]
    return [
        {"month": label, "visitors": unions.of("visitors", first, last),
         **{t.counter: sum(row[t.counter] for day, row in rows.items() if first <= day <= last)
            for t in SERIES},
         "leads": unions.of("leads", first, last)}
        for label, (first, last) in _months(period).items()
    ]


async def stats(pool: asyncpg.Pool, scripts: Scripts, keys: k.Keys, tenant_id: int,
                timezone: ZoneInfo, period: Period, previous: Period) -> dict:
    """The /stats document's `data` for `period`, compared with `previous`."""
    runs = [(p.first, p.last) for p in (period, previous)]
    if period.unit == "month":
        runs += _months(period).values()
    unions = Unions(runs)

    async def rollups() -> None:
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                            readonly=True):
            await unions.load(conn, tenant_id)
        await unions.count(scripts, keys, tenant_id)

    if period.unit == "hour":
        steps, _ = await asyncio.gather(hours(pool, tenant_id, timezone, period), rollups())
    else:
        await rollups()
        steps = series(unions, period)
    return {
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat(),
                   "timezone": timezone.key},
        "totals": totals(unions, period),
        "previous": totals(unions, previous),
        "series": steps,
        "unit": period.unit,  # what each step of the series is: hour, day or month
    }
