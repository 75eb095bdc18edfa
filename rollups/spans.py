"""Spans: runs of a tenant's days taken together, so that a long period is read from a
handful of rows rather than one row (or 1,000 breakdown rows) per day.

A built span keeps the union of its days' visitor and lead sketches (`rollup_spans`) and the
sums of its days' breakdown rows per dimension and value (`breakdown_spans`); sums and unions
of spans are those of their days, so a read gives the same numbers from spans as from days,
only sooner. Any run of days is some built spans and single days (`pieces`).

Two kinds are built (`build`), for days that are over in the tenant's timezone:
- lasting ones: blocks of 2, 4, ... 256 days starting on a day whose number
  (`date.toordinal()`) is a multiple of their length, which tile the calendar so that any run
  of days is a few of them; and whole months;
- the part that is over of each named period of the current day and of the period before it
  (rollups.periods.closed_parts), so that `30d` reads one span and today; these are rebuilt
  every day and the previous day's deleted.

A write to any day of a built span (a late flush, the drain, `rebuild`) deletes the span in
the transaction of the write (`invalidate`), and it is built again later; until then reads
take smaller spans or days. An advisory lock (one per slot of tenants) keeps a build from
missing a write that commits while it runs: writers hold it shared, the build exclusive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

import asyncpg

from realtime import keys as k
from realtime.days import local_day
from realtime.scripts import Scripts
from rollups.sketches import merge_unions

MAX_LEVEL = 8  # the longest spans cover 2**8 = 256 days
LOCK_CLASS = 0x7370  # advisory lock class of spans (see rollups.locks)
LOCK_SLOTS = 16
MERGE_CHUNK = 64  # spans merged per Redis call while building

Span = tuple[dt.date, dt.date]  # first and last day, inclusive


def _lock_key(tenant_id: int) -> int:
    # Tenants share LOCK_SLOTS locks: a write of thousands of tenant-days takes at most that
    # many (Postgres' lock table is small), and a build makes only its slot's writers wait.
    return tenant_id % LOCK_SLOTS


def is_block(span: Span) -> bool:
    length = (span[1] - span[0]).days + 1
    return (length & (length - 1) == 0 and 2 <= length <= 1 << MAX_LEVEL
            and span[0].toordinal() % length == 0)


def _month_end(day: dt.date) -> dt.date:
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


def is_month(span: Span) -> bool:
    return span[0].day == 1 and span[1] == _month_end(span[0])


def pieces(first: dt.date, last: dt.date, built: set[Span]) -> tuple[list[Span], list[dt.date]]:
    """The built spans and single days that together cover first..last exactly, each day
    once, taking the longest built span that starts where the cover has got to."""
    ends: dict[dt.date, dt.date] = {}
    for start, end in built:
        if first <= start and end <= last and end > ends.get(start, dt.date.min):
            ends[start] = end
    spans: list[Span] = []
    days: list[dt.date] = []
    day = first
    while day <= last:
        if day in ends:
            spans.append((day, ends[day]))
            day = ends[day]
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

# Two statements sent as one (the simple query protocol, one round trip on every write):
# the lock, then the delete, whose snapshot must be taken after the lock is granted so that
# it sees a span a build committed meanwhile. The values are ints and dates formatted here.
INVALIDATE_SQL = """
SELECT pg_advisory_xact_lock_shared({lock_class}, slot) FROM unnest('{slots}'::int[]) AS slot;
WITH gone AS (
    DELETE FROM rollup_spans s
    USING unnest('{tenants}'::bigint[], '{days}'::date[]) AS w (tenant_id, day)
    WHERE s.tenant_id = w.tenant_id AND s.last_day >= w.day
      AND (s.first_day <= w.day OR {and_later})
    RETURNING s.tenant_id, s.first_day, s.last_day
)
DELETE FROM breakdown_spans b USING gone
WHERE b.tenant_id = gone.tenant_id AND b.first_day = gone.first_day
  AND b.last_day = gone.last_day;
"""


def _array(values: Iterable[int | dt.date]) -> str:
    return "{" + ",".join(str(int(v)) if isinstance(v, int) else v.isoformat()
                          for v in values) + "}"


async def invalidate(conn: asyncpg.Connection, tenant_days: Iterable[tuple[int, dt.date]], *,
                     and_later: bool = False) -> None:
    """Deletes every span holding one of these (tenant, day)s (or, `and_later`, any day
    from it on); call within the transaction that writes them. A span is found from its
    last day, so that the usual write, to today (which no span holds), finds none at once."""
    pairs = sorted(set(tenant_days))
    if not pairs:
        return
    await conn.execute(INVALIDATE_SQL.format(
        lock_class=LOCK_CLASS, slots=_array(sorted({_lock_key(t) for t, _ in pairs})),
        tenants=_array(t for t, _ in pairs), days=_array(d for _, d in pairs),
        and_later="true" if and_later else "false"))


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
# The sketches of single days and spans, each named by its first and last day.
SKETCHES_SQL = """
SELECT day AS first_day, day AS last_day, visitors_hll, leads_hll FROM daily_rollups
WHERE tenant_id = $1 AND day = ANY($2::date[])
UNION ALL
SELECT first_day, last_day, visitors_hll, leads_hll FROM rollup_spans
WHERE tenant_id = $1 AND (first_day, last_day) IN (SELECT * FROM unnest($3::date[], $4::date[]))
"""
INSERT_SKETCHES_SQL = """
INSERT INTO rollup_spans (tenant_id, first_day, last_day, visitors_hll, leads_hll)
SELECT $1, * FROM unnest($2::date[], $3::date[], $4::bytea[], $5::bytea[])
"""
# Each new span's breakdown sums from its pieces: spans ($2..$5) and single days ($6..$8).
INSERT_SUMS_SQL = """
INSERT INTO breakdown_spans (tenant_id, first_day, last_day, dimension, value, events,
                             visitors, leads)
SELECT $1, p.first_day, p.last_day, p.dimension, p.value, sum(p.events), sum(p.visitors),
       sum(p.leads)
FROM (
    SELECT m.first_day, m.last_day, b.dimension, b.value, b.events, b.visitors, b.leads
    FROM unnest($2::date[], $3::date[], $4::date[], $5::date[])
        AS m (first_day, last_day, piece_first, piece_last)
    JOIN breakdown_spans b ON b.tenant_id = $1 AND b.first_day = m.piece_first
                           AND b.last_day = m.piece_last
    UNION ALL
    SELECT m.first_day, m.last_day, b.dimension, b.value, b.events, b.visitors, b.leads
    FROM unnest($6::date[], $7::date[], $8::date[]) AS m (first_day, last_day, day)
    JOIN breakdown_rollups b ON b.tenant_id = $1 AND b.dimension = ANY($9::text[])
                             AND b.day = m.day
) AS p
GROUP BY 2, 3, 4, 5
"""
DELETE_SQL = [
    f"""DELETE FROM {table} WHERE tenant_id = $1
        AND (first_day, last_day) IN (SELECT * FROM unnest($2::date[], $3::date[]))"""
    for table in ("rollup_spans", "breakdown_spans")
]


def _lasting(first: dt.date, horizon: dt.date) -> list[Span]:
    """The blocks, shortest first, then the whole months, from `first` to `horizon`."""
    wanted: list[Span] = []
    for level in range(1, MAX_LEVEL + 1):
        size = 1 << level
        start = dt.date.fromordinal(first.toordinal() - first.toordinal() % size)
        while start + dt.timedelta(days=size - 1) <= horizon:
            wanted.append((start, start + dt.timedelta(days=size - 1)))
            start += dt.timedelta(days=size)
    month = first.replace(day=1)
    while _month_end(month) <= horizon:
        wanted.append((month, _month_end(month)))
        month = _month_end(month) + dt.timedelta(days=1)
    return wanted


async def _exclusive(conn: asyncpg.Connection, tenant_id: int) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS, _lock_key(tenant_id))


async def build(pool: asyncpg.Pool, scripts: Scripts, keys: k.Keys, tenant_id: int,
                horizon: dt.date, ranges: Iterable[Span] = ()) -> int:
    """Builds the tenant's missing spans up to `horizon` (its last day that is over): the
    lasting ones, and `ranges` (the named periods' parts that are over), deleting the ranges
    of earlier days. Returns how many were built."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            await _exclusive(conn, tenant_id)
            first = await conn.fetchval(FIRST_DAY_SQL, tenant_id)
            have = await built(conn, tenant_id, dt.date.min, dt.date.max)
            ranges = {r for r in ranges if r[0] < r[1] <= horizon}
            stale = sorted(s for s in have
                           if not (is_block(s) or is_month(s)) and s not in ranges)
            for sql in DELETE_SQL:
                await conn.execute(sql, tenant_id, [s[0] for s in stale], [s[1] for s in stale])
            have.difference_update(stale)
        if first is None or first > horizon:
            return 0
        made = 0
        # Shorter spans first: each is built from the pieces built before it. One short
        # transaction per chunk, so the slot's writers never wait for a whole tenant.
        for group in (*_by_length(_lasting(first, horizon)), sorted(ranges)):
            wanted = [span for span in group if span not in have]
            for i in range(0, len(wanted), MERGE_CHUNK):
                async with conn.transaction():
                    await _exclusive(conn, tenant_id)
                    made += await _build(conn, scripts, keys, tenant_id,
                                         wanted[i:i + MERGE_CHUNK], have)
        return made


def _by_length(wanted: list[Span]) -> list[list[Span]]:
    groups: dict[int, list[Span]] = {}
    for span in wanted:
        groups.setdefault((span[1] - span[0]).days, []).append(span)
    return [groups[length] for length in sorted(groups)]


async def _build(conn: asyncpg.Connection, scripts: Scripts, keys: k.Keys, tenant_id: int,
                 wanted: list[Span], have: set[Span]) -> int:
    """Builds `wanted` from the pieces in `have` that still exist (a write may have deleted
    one since it was built: the spans it was to make wait for the next build)."""
    covers = {span: pieces(*span, have) for span in wanted}
    parts = sorted({p for span in wanted for p in covers[span][0]})
    days = sorted({d for span in wanted for d in covers[span][1]})
    found = {(r["first_day"], r["last_day"]): r for r in await conn.fetch(
        SKETCHES_SQL, tenant_id, days, [p[0] for p in parts], [p[1] for p in parts])}
    have.difference_update(p for p in parts if p not in found)
    wanted = [span for span in wanted if all(p in found for p in covers[span][0])]
    if not wanted:
        return 0
    dimensions = [r["dimension"] for r in await conn.fetch(DIMENSIONS_SQL, tenant_id)]

    def sketches(span: Span, column: str) -> list[bytes | None]:
        cover = [*covers[span][0], *((d, d) for d in covers[span][1])]
        return [found[piece][column] for piece in cover if piece in found]

    merged = {column: await merge_unions(scripts, keys, tenant_id,
                                         [sketches(span, column) for span in wanted])
              for column in ("visitors_hll", "leads_hll")}
    await conn.execute(INSERT_SKETCHES_SQL, tenant_id, [s[0] for s in wanted],
                       [s[1] for s in wanted], merged["visitors_hll"], merged["leads_hll"])
    by_span = [(span, part) for span in wanted for part in covers[span][0]]
    by_day = [(span, day) for span in wanted for day in covers[span][1]]
    await conn.execute(
        INSERT_SUMS_SQL, tenant_id,
        [s[0] for s, _ in by_span], [s[1] for s, _ in by_span],
        [p[0] for _, p in by_span], [p[1] for _, p in by_span],
        [s[0] for s, _ in by_day], [s[1] for s, _ in by_day], [d for _, d in by_day],
        dimensions)
    have.update(wanted)
    return len(wanted)


# The tenants a pass has work for: those with days to take together, or spans that may be
# stale. One that never sent an event costs the pass nothing (a platform provisions
# thousands), where each costs it a transaction and four statements.
TENANTS_SQL = """
SELECT id, timezone FROM tenants t
WHERE EXISTS (SELECT FROM daily_rollups WHERE tenant_id = t.id)
   OR EXISTS (SELECT FROM breakdown_rollups WHERE tenant_id = t.id)
   OR EXISTS (SELECT FROM rollup_spans WHERE tenant_id = t.id)
ORDER BY id
"""


async def tenants_to_build(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """(id, timezone) of the tenants with days or spans."""
    return await pool.fetch(TENANTS_SQL)


async def build_all(pool: asyncpg.Pool, scripts: Scripts, keys: k.Keys, now: float,
                    ranges: Callable[[dt.date], Iterable[Span]]) -> int:
    """Builds every tenant's missing spans up to its local yesterday, with `ranges(today)`
    for its local today; returns how many."""
    made = 0
    for row in await tenants_to_build(pool):
        today = local_day(now, ZoneInfo(row["timezone"]))
        made += await build(pool, scripts, keys, row["id"], today - dt.timedelta(days=1),
                            ranges(today))
    return made
