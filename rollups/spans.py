"""Spans: a tenant's days taken together in runs of 2, 4, ... 256, so that a long period is
read from a handful of rows rather than one row (or 1,000 breakdown rows) per day.

A span of 2**level days starts on a day whose number (`date.toordinal()`) is a multiple of
2**level: the spans of one level tile the calendar, and any run of days is a few spans and
a few single days (`pieces`). A built span keeps the union of its days' visitor and lead
sketches (`rollup_spans`) and the sums of its days' breakdown rows per dimension and value
(`breakdown_spans`); sums and unions of spans are those of their days, so a read gives the
same numbers from spans as from days, only sooner.

Spans are built (`build`) for days that are over in the tenant's timezone, from the spans of
the level below. A write to any day of a built span (a late flush, the drain, `rebuild`)
deletes the span in the transaction of the write (`invalidate`), and it is built again
later; until then reads take its days. A per-tenant advisory lock keeps a build from
missing a write that commits while it runs: writers hold it shared, the build exclusive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

import asyncpg

from realtime import keys as k
from realtime.days import local_day
from realtime.scripts import Scripts
from rollups.sketches import merge_unions

MAX_LEVEL = 8  # the longest spans cover 2**8 = 256 days
LOCK_CLASS = 0x7370  # advisory lock class of spans (see rollups.locks)
MERGE_CHUNK = 64  # spans merged per Redis call while building

Span = tuple[dt.date, dt.date]  # first and last day, inclusive


def _lock_key(tenant_id: int) -> int:
    return tenant_id % 2**31  # a collision only makes one tenant wait for another


def _span(first: dt.date, level: int) -> Span:
    return first, first + dt.timedelta(days=(1 << level) - 1)


def _start(day: dt.date, level: int) -> dt.date:
    """The first day of the span of `level` holding `day`."""
    return day - dt.timedelta(days=day.toordinal() % (1 << level))


def containing(day: dt.date) -> list[Span]:
    """Every span (of every level) that holds `day`."""
    return [_span(_start(day, level), level) for level in range(1, MAX_LEVEL + 1)]


def pieces(first: dt.date, last: dt.date, built: set[Span]) -> tuple[list[Span], list[dt.date]]:
    """The built spans and single days that together cover first..last exactly, each day
    once, taking the longest built span that starts where the cover has got to."""
    spans: list[Span] = []
    days: list[dt.date] = []
    day = first
    while day <= last:
        for level in range(MAX_LEVEL, 0, -1):
            span = _span(day, level)
            if span[1] <= last and span in built and _start(day, level) == day:
                spans.append(span)
                day = span[1] + dt.timedelta(days=1)
                break
        else:
            days.append(day)
            day += dt.timedelta(days=1)
    return spans, days


BUILT_SQL = """
SELECT first_day, last_day FROM rollup_spans
WHERE tenant_id = $1 AND first_day >= $2 AND last_day <= $3
"""


async def built(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int, first: dt.date,
                last: dt.date) -> set[Span]:
    """The built spans that lie within first..last."""
    return {(r["first_day"], r["last_day"])
            for r in await conn.fetch(BUILT_SQL, tenant_id, first, last)}


# -- writes ---------------------------------------------------------------------------------

WRITER_LOCK_SQL = "SELECT pg_advisory_xact_lock_shared($1, t) FROM unnest($2::int[]) AS t"
INVALIDATE_SQL = """
WITH gone AS (
    DELETE FROM rollup_spans s
    USING unnest($1::bigint[], $2::date[], $3::date[]) AS g (tenant_id, first_day, last_day)
    WHERE s.tenant_id = g.tenant_id AND s.first_day = g.first_day AND s.last_day = g.last_day
    RETURNING s.tenant_id, s.first_day, s.last_day
)
DELETE FROM breakdown_spans b USING gone
WHERE b.tenant_id = gone.tenant_id AND b.first_day = gone.first_day
  AND b.last_day = gone.last_day
"""
INVALIDATE_FROM_SQL = [
    f"DELETE FROM {table} WHERE tenant_id = $1 AND last_day >= $2"
    for table in ("rollup_spans", "breakdown_spans")
]


async def _writer_lock(conn: asyncpg.Connection, tenant_ids: Iterable[int]) -> None:
    await conn.execute(WRITER_LOCK_SQL, LOCK_CLASS, sorted({_lock_key(t) for t in tenant_ids}))


async def invalidate(conn: asyncpg.Connection, tenant_days: Iterable[tuple[int, dt.date]]
                     ) -> None:
    """Deletes every span holding one of these (tenant, day)s; call within the transaction
    that writes them."""
    gone = {(t, *span) for t, day in set(tenant_days) for span in containing(day)}
    if not gone:
        return
    await _writer_lock(conn, {t for t, _, _ in gone})
    await conn.execute(INVALIDATE_SQL, *([g[i] for g in gone] for i in range(3)))


async def invalidate_from(conn: asyncpg.Connection, tenant_id: int, since: dt.date) -> None:
    """Deletes the tenant's spans that hold `since` or any later day (within a transaction)."""
    await _writer_lock(conn, [tenant_id])
    for sql in INVALIDATE_FROM_SQL:
        await conn.execute(sql, tenant_id, since)


# -- building -------------------------------------------------------------------------------

FIRST_DAY_SQL = """
SELECT least((SELECT min(day) FROM daily_rollups WHERE tenant_id = $1),
             (SELECT min(day) FROM breakdown_rollups WHERE tenant_id = $1))
"""
# The tenant's dimensions, one index probe each (a loose scan of the primary key).
DIMENSIONS_SQL = """
WITH RECURSIVE d (dimension) AS (
    SELECT min(dimension) FROM breakdown_rollups WHERE tenant_id = $1
    UNION ALL
    SELECT (SELECT min(dimension) FROM breakdown_rollups
            WHERE tenant_id = $1 AND dimension > d.dimension)
    FROM d WHERE d.dimension IS NOT NULL
)
SELECT dimension FROM d WHERE dimension IS NOT NULL
"""
DAY_SKETCHES_SQL = """
SELECT day, visitors_hll, leads_hll FROM daily_rollups
WHERE tenant_id = $1 AND day = ANY($2::date[])
"""
SPAN_SKETCHES_SQL = """
SELECT first_day, last_day, visitors_hll, leads_hll FROM rollup_spans
WHERE tenant_id = $1 AND (first_day, last_day) IN (SELECT * FROM unnest($2::date[], $3::date[]))
"""
INSERT_SKETCHES_SQL = """
INSERT INTO rollup_spans (tenant_id, first_day, last_day, visitors_hll, leads_hll)
SELECT $1, * FROM unnest($2::date[], $3::date[], $4::bytea[], $5::bytea[])
"""
# Each new span's breakdown sums from its two halves: days (level 1) or spans (above).
SUM_DAYS_SQL = """
INSERT INTO breakdown_spans (tenant_id, first_day, last_day, dimension, value, events,
                             visitors, leads)
SELECT $1, h.first_day, h.last_day, b.dimension, b.value, sum(b.events), sum(b.visitors),
       sum(b.leads)
FROM unnest($2::date[], $3::date[], $4::date[]) AS h (first_day, last_day, day)
JOIN breakdown_rollups b ON b.tenant_id = $1 AND b.dimension = ANY($5::text[])
                         AND b.day = h.day
GROUP BY 2, 3, 4, 5
"""
SUM_SPANS_SQL = """
INSERT INTO breakdown_spans (tenant_id, first_day, last_day, dimension, value, events,
                             visitors, leads)
SELECT $1, h.first_day, h.last_day, b.dimension, b.value, sum(b.events), sum(b.visitors),
       sum(b.leads)
FROM unnest($2::date[], $3::date[], $4::date[], $5::date[])
    AS h (first_day, last_day, half_first, half_last)
JOIN breakdown_spans b ON b.tenant_id = $1 AND b.first_day = h.half_first
                       AND b.last_day = h.half_last
GROUP BY 2, 3, 4, 5
"""


def _halves(span: Span, level: int) -> tuple[Span, Span]:
    first, last = span
    middle = first + dt.timedelta(days=1 << (level - 1))
    return (first, middle - dt.timedelta(days=1)), (middle, last)


async def build(pool: asyncpg.Pool, scripts: Scripts, keys: k.Keys, tenant_id: int,
                horizon: dt.date) -> int:
    """Builds the tenant's missing spans that end by `horizon` (the last day that is over);
    returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS,
                           _lock_key(tenant_id))
        first = await conn.fetchval(FIRST_DAY_SQL, tenant_id)
        if first is None or first > horizon:
            return 0
        have = await built(conn, tenant_id, dt.date.min, horizon)
        dimensions = [r["dimension"] for r in await conn.fetch(DIMENSIONS_SQL, tenant_id)]
        made = 0
        for level in range(1, MAX_LEVEL + 1):
            size = dt.timedelta(days=1 << level)
            wanted: list[Span] = []
            start = _start(first, level)
            while start + size - dt.timedelta(days=1) <= horizon:
                if _span(start, level) not in have:
                    wanted.append(_span(start, level))
                start += size
            for i in range(0, len(wanted), MERGE_CHUNK):
                await _build_level(conn, scripts, keys, tenant_id, level,
                                   wanted[i:i + MERGE_CHUNK], dimensions)
            have.update(wanted)
            made += len(wanted)
        return made


async def _build_level(conn: asyncpg.Connection, scripts: Scripts, keys: k.Keys,
                       tenant_id: int, level: int, spans: list[Span],
                       dimensions: list[str]) -> None:
    halves = [_halves(span, level) for span in spans]
    if level == 1:
        days = [day for pair in halves for day, _ in pair]
        rows = {r["day"]: r for r in await conn.fetch(DAY_SKETCHES_SQL, tenant_id, days)}
        parts = [[rows.get(half[0]) for half in pair] for pair in halves]
    else:
        flat = [half for pair in halves for half in pair]
        rows = {(r["first_day"], r["last_day"]): r for r in await conn.fetch(
            SPAN_SKETCHES_SQL, tenant_id, [h[0] for h in flat], [h[1] for h in flat])}
        parts = [[rows.get(half) for half in pair] for pair in halves]
    merged = {
        column: await merge_unions(scripts, keys, tenant_id, [
            [row[column] for row in pair if row is not None] for pair in parts])
        for column in ("visitors_hll", "leads_hll")
    }
    await conn.execute(INSERT_SKETCHES_SQL, tenant_id, [s[0] for s in spans],
                       [s[1] for s in spans], merged["visitors_hll"], merged["leads_hll"])
    if level == 1:
        h = [(span, half[0]) for span, pair in zip(spans, halves, strict=True) for half in pair]
        await conn.execute(SUM_DAYS_SQL, tenant_id, [s[0] for s, _ in h], [s[1] for s, _ in h],
                           [day for _, day in h], dimensions)
    else:
        h = [(span, half) for span, pair in zip(spans, halves, strict=True) for half in pair]
        await conn.execute(SUM_SPANS_SQL, tenant_id, [s[0] for s, _ in h], [s[1] for s, _ in h],
                           [x[0] for _, x in h], [x[1] for _, x in h])


TENANTS_SQL = "SELECT id, timezone FROM tenants ORDER BY id"


async def build_all(pool: asyncpg.Pool, scripts: Scripts, keys: k.Keys, now: float) -> int:
    """Builds every tenant's missing spans up to its local yesterday; returns how many."""
    made = 0
    for row in await pool.fetch(TENANTS_SQL):
        yesterday = local_day(now, ZoneInfo(row["timezone"])) - dt.timedelta(days=1)
        made += await build(pool, scripts, keys, row["id"], yesterday)
    return made
