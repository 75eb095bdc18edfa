"""Breakdown rollups: per tenant, local day, dimension and value, the events read for the
dimension, the distinct visitors who sent them, and how many of those were leads that day.

Counted in the drain, in the transaction that stores the raw events, from the rows that
insert actually stored (`RETURNING`): a replayed batch stores nothing and so counts nothing.
Distinct visitors and leads come from the day's working sets (`breakdown_visitors`,
`lead_visitors`): a visitor new to a value adds one visitor there, and one lead when the
visitor is a lead that day; a visitor who becomes a lead adds one lead to every value the
visitor was already seen under that day. A visitor is a keyed hash of the daily-salted
address hash and the user agent, as in the raw events, so it means nothing past its day;
retention deletes the working sets of days over.

At most `cap` values per tenant, day and dimension are kept (the first ones seen); the
events of any further value count under `(other)`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import NamedTuple
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from realtime.event_types import LEADS
from rollups import dimensions, spans
from rollups.dimensions import OTHER, Event

DEFAULT_CAP = 1000
LEAD_TYPES = frozenset(t.name for t in LEADS)
# Rows of events needed to count breakdowns: what the drain's insert returns, and rebuild reads.
EVENT_COLUMNS = ("tenant_id, event_type, occurred_at, metadata, user_agent, referrer, ip_hash, "
                 "country")


class Fact(NamedTuple):  # a tuple: tens of thousands are built per batch
    tenant_id: int
    day: dt.date
    dimension: str
    value: str
    visitor: bytes


def visitor_of(ip_hash: str, user_agent: str) -> bytes:
    return hashlib.blake2b(f"{ip_hash}\x00{user_agent}".encode(), digest_size=12).digest()


def facts(rows: Iterable[asyncpg.Record], zones: dict[int, ZoneInfo],
          ) -> tuple[list[Fact], set[tuple[int, dt.date, bytes]]]:
    """The (dimension, value, visitor) facts of stored events, and their lead visitors."""
    found: list[Fact] = []
    leads: set[tuple[int, dt.date, bytes]] = set()
    for row in rows:
        zone = zones.get(row["tenant_id"])
        if zone is None:
            continue  # the tenant is gone
        day = row["occurred_at"].astimezone(zone).date()
        visitor = visitor_of(row["ip_hash"], row["user_agent"])
        metadata = row["metadata"]
        if isinstance(metadata, str):
            metadata = orjson.loads(metadata)
        event = Event(row["event_type"], metadata if isinstance(metadata, dict) else {},
                      row["user_agent"], row["referrer"], row["country"])
        found.extend(Fact(row["tenant_id"], day, name, value, visitor)
                     for name, value in dimensions.values(event))
        if row["event_type"] in LEAD_TYPES:
            leads.add((row["tenant_id"], day, visitor))
    return found, leads


async def zones_of(conn: asyncpg.Connection, tenant_ids: set[int]) -> dict[int, ZoneInfo]:
    rows = await conn.fetch("SELECT id, timezone FROM tenants WHERE id = ANY($1::bigint[])",
                            list(tenant_ids))
    return {row["id"]: ZoneInfo(row["timezone"]) for row in rows}


GROUP_SIZES_SQL = """
SELECT g.tenant_id, g.day, g.dimension, count(b.value) AS size
FROM unnest($1::bigint[], $2::date[], $3::text[]) AS g (tenant_id, day, dimension)
JOIN breakdown_rollups b USING (tenant_id, day, dimension)
WHERE b.value <> $4
GROUP BY 1, 2, 3
"""
EXISTING_SQL = """
SELECT tenant_id, day, dimension, value
FROM unnest($1::bigint[], $2::date[], $3::text[], $4::text[])
    AS c (tenant_id, day, dimension, value)
JOIN breakdown_rollups b USING (tenant_id, day, dimension, value)
"""
NEW_LEADS_SQL = """
INSERT INTO lead_visitors (tenant_id, day, visitor)
SELECT * FROM unnest($1::bigint[], $2::date[], $3::bytea[])
ON CONFLICT DO NOTHING
RETURNING tenant_id, day, visitor
"""
NEW_MEMBERS_SQL = """
INSERT INTO breakdown_visitors (tenant_id, day, dimension, value, visitor)
SELECT * FROM unnest($1::bigint[], $2::date[], $3::text[], $4::text[], $5::bytea[])
ON CONFLICT DO NOTHING
RETURNING tenant_id, day, dimension, value, visitor
"""
LEADS_AMONG_SQL = """
SELECT l.tenant_id, l.day, l.visitor
FROM unnest($1::bigint[], $2::date[], $3::bytea[]) AS c (tenant_id, day, visitor)
JOIN lead_visitors l USING (tenant_id, day, visitor)
"""
MEMBERS_OF_SQL = """
SELECT m.tenant_id, m.day, m.dimension, m.value, m.visitor
FROM unnest($1::bigint[], $2::date[], $3::bytea[]) AS c (tenant_id, day, visitor)
JOIN breakdown_visitors m USING (tenant_id, day, visitor)
"""
ADD_SQL = """
INSERT INTO breakdown_rollups AS r (tenant_id, day, dimension, value, events, visitors, leads)
SELECT * FROM unnest($1::bigint[], $2::date[], $3::text[], $4::text[], $5::bigint[],
                     $6::bigint[], $7::bigint[])
ON CONFLICT (tenant_id, dimension, day, value) DO UPDATE SET
    events = r.events + excluded.events,
    visitors = r.visitors + excluded.visitors,
    leads = r.leads + excluded.leads
"""


def _columns(rows: Iterable[tuple], width: int) -> list[list]:
    rows = list(rows)
    return [[row[i] for row in rows] for i in range(width)]


async def _capped(conn: asyncpg.Connection, found: list[Fact], cap: int) -> list[Fact]:
    """The facts with every value past the cap of its tenant, day and dimension as OTHER."""
    candidates: dict[tuple[int, dt.date, str], list[str]] = defaultdict(list)
    for fact in found:
        group = candidates[(fact.tenant_id, fact.day, fact.dimension)]
        if fact.value != OTHER and fact.value not in group:
            group.append(fact.value)
    sizes = {(r["tenant_id"], r["day"], r["dimension"]): r["size"] for r in await conn.fetch(
        GROUP_SIZES_SQL, *_columns(candidates, 3), OTHER)}
    flat = [(*group, value) for group, values in candidates.items() for value in values]
    existing = {tuple(r) for r in await conn.fetch(EXISTING_SQL, *_columns(flat, 4))}
    kept: set[tuple] = set()
    for group, values in candidates.items():
        size = sizes.get(group, 0)
        for value in values:
            key = (*group, value)
            if key in existing:
                kept.add(key)
            elif size < cap:
                kept.add(key)
                size += 1
    return [f if (f.tenant_id, f.day, f.dimension, f.value) in kept else
            Fact(f.tenant_id, f.day, f.dimension, OTHER, f.visitor) for f in found]


async def count(conn: asyncpg.Connection, rows: list[asyncpg.Record], *,
                cap: int = DEFAULT_CAP) -> int:
    """Adds stored events to the breakdown rollups; call within the transaction that stored
    them, with only the rows it stored. Returns the facts counted."""
    if not rows:
        return 0
    zones = await zones_of(conn, {row["tenant_id"] for row in rows})
    found, leads = facts(rows, zones)
    found = await _capped(conn, found, cap)
    new_leads = {tuple(r) for r in await conn.fetch(NEW_LEADS_SQL, *_columns(leads, 3))}
    members = {(f.tenant_id, f.day, f.dimension, f.value, f.visitor) for f in found}
    new_members = {tuple(r) for r in await conn.fetch(NEW_MEMBERS_SQL, *_columns(members, 5))}
    visitors_of_new = {(t, d, v) for t, d, _, _, v in new_members}
    leads_now = {tuple(r) for r in await conn.fetch(LEADS_AMONG_SQL,
                                                   *_columns(visitors_of_new, 3))}
    seen_before = {tuple(r) for r in await conn.fetch(MEMBERS_OF_SQL, *_columns(new_leads, 3))}

    events = Counter((f.tenant_id, f.day, f.dimension, f.value) for f in found)
    visitors = Counter(m[:4] for m in new_members)
    lead_counts = Counter(m[:4] for m in new_members if (m[0], m[1], m[4]) in leads_now)
    lead_counts.update(m[:4] for m in seen_before - new_members)
    keys = sorted(set(events) | set(lead_counts))
    await conn.execute(ADD_SQL, *_columns(keys, 4), [events[key] for key in keys],
                       [visitors[key] for key in keys], [lead_counts[key] for key in keys])
    await spans.invalidate(conn, {key[:2] for key in keys})
    return len(found)


# Over the spans and single days that cover the period (rollups.spans); the top `$6` values
# (by visitors, then events, then value) and the sums of the rest in one more row, `rest`.
# Ties go by the value's bytes (UTF-8: code points), not the database's collation, which
# costs far more per comparison (1,000 pages of equal counts: 7 ms against under 1). `spans`
# counts the spans read that still exist, in the statement's own snapshot: a span and its
# breakdown rows are written and deleted together, so when all do, the sums are whole.
RESULTS_SQL = """
WITH summed AS (
    SELECT value, sum(visitors)::bigint AS visitors, sum(events)::bigint AS events,
           sum(leads)::bigint AS leads
    FROM (
        SELECT value, visitors, events, leads FROM breakdown_rollups
        WHERE tenant_id = $1 AND dimension = $2 AND day = ANY($3::date[])
        UNION ALL
        SELECT b.value, b.visitors, b.events, b.leads
        FROM unnest($4::date[], $5::date[]) AS s (first_day, last_day)
        JOIN breakdown_spans b ON b.tenant_id = $1 AND b.first_day = s.first_day
                               AND b.last_day = s.last_day AND b.dimension = $2
    ) AS pieces
    GROUP BY value
), ranked AS (
    SELECT *, row_number() OVER (ORDER BY visitors DESC, events DESC, value COLLATE "C") AS rank
    FROM summed
)
SELECT false AS rest, rank, value, visitors, events, leads, NULL::bigint AS spans
FROM ranked WHERE rank <= $6
UNION ALL
SELECT true, NULL, NULL, coalesce(sum(visitors), 0)::bigint, coalesce(sum(events), 0)::bigint,
       coalesce(sum(leads), 0)::bigint,
       (SELECT count(*) FROM unnest($4::date[], $5::date[]) AS s (first_day, last_day)
        JOIN rollup_spans r ON r.tenant_id = $1 AND r.first_day = s.first_day
                            AND r.last_day = s.last_day)
FROM ranked WHERE rank > $6
ORDER BY rest, rank
"""
ATTEMPTS = 3


async def breakdown(pool: asyncpg.Pool, tenant_id: int, dimension: str, first: dt.date,
                    last: dt.date, limit: int) -> tuple[list[dict], dict]:
    """The top `limit` values over the days, and the sums of the rest."""
    for attempt in range(ATTEMPTS):
        # The last attempt takes the days alone, which no write deletes.
        built = await spans.built(pool, tenant_id, first, last) if attempt < ATTEMPTS - 1 \
            else set()
        parts, days = spans.pieces(first, last, built)
        rows = await pool.fetch(RESULTS_SQL, tenant_id, dimension, days,
                                [p[0] for p in parts], [p[1] for p in parts], limit)
        if rows[-1]["spans"] == len(parts):  # none was deleted after `built` read it
            break
    results = [{"value": r["value"], "visitors": r["visitors"], "events": r["events"],
                "leads": r["leads"]} for r in rows if not r["rest"]]
    [rest] = [r for r in rows if r["rest"]]
    return results, {"visitors": rest["visitors"], "events": rest["events"],
                     "leads": rest["leads"]}


DIMENSIONS_SQL = """
SELECT DISTINCT dimension FROM breakdown_rollups
WHERE tenant_id = $1 AND day BETWEEN $2 AND $3
"""


async def dimensions_seen(pool: asyncpg.Pool, tenant_id: int, first: dt.date,
                          last: dt.date) -> list[str]:
    return sorted(r["dimension"] for r in await pool.fetch(DIMENSIONS_SQL, tenant_id, first,
                                                           last))
