"""Breakdown rollups: per tenant, local day, dimension and value, the events read for the
dimension, the distinct visitors who sent them, and how many of those were leads that day.

Counted from the breakdown queue (rollups/breakdown_queue.py), which holds exactly the
events the drain stored (a replayed batch stores nothing and so queues nothing), in the
transaction that takes them off it.
Distinct visitors and leads come from the day's working set (`breakdown_visitors`): one row
per visitor and day, holding the values the visitor was seen under (as `key`s) and whether
the visitor is a lead that day. A visitor new to a value adds one visitor there, and one
lead when the visitor is a lead that day; a visitor who becomes a lead adds one lead to every
value the visitor was already seen under that day. A visitor is a keyed hash of the
daily-salted address hash and the user agent, as in the raw events, so it means nothing past
its day; retention deletes the working sets of days over.

At most `cap` values per tenant, day and dimension are kept (the first ones seen); the
events of any further value count under `(other)`.

A batch is counted by what its events have in common: the (dimension, value) keys of an
event depend only on its type, metadata, user agent, page and country (`keys_of`, cached),
so events are tallied per tenant, day and those keys, and visitors per tenant, day and
visitor, before any value is counted.

The cap asks how many values each group (tenant, day, dimension) of the batch keeps. The
scheduler does not ask again of a group it knows to be far enough below the cap (`Bounds`):
it keeps, per shard, a number no smaller than each group's size, which holds while no one
else counted into the shard's tenants since its last batch. Every count marks the shards it
counts into as its own (`breakdown_writers`), so a counter learns that at its next batch.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from realtime.event_types import LEADS
from realtime.keys import Keys
from rollups import dimensions, spans
from rollups.dimensions import OTHER, Event

DEFAULT_CAP = 1000
LEAD_TYPES = frozenset(t.name for t in LEADS)
# Rows of events needed to count breakdowns: what the queue gives, and rebuild reads.
EVENT_COLUMNS = ("tenant_id, event_type, occurred_at, metadata, user_agent, referrer, ip_hash, "
                 "country")

TenantDay = tuple[int, dt.date]
Visit = tuple[int, dt.date, bytes]  # tenant, day, visitor
Fact = tuple[int, dt.date, str]  # tenant, day, key
Kind = tuple[int, dt.date, tuple[str, ...]]  # tenant, day, the keys of an event
Group = tuple[int, dt.date, str]  # tenant, day, dimension
MAX_BOUNDS = 16_384  # groups a shard's bounds keep (about 150 bytes each)


@dataclass
class Bounds:
    """What one counter knows of a shard's groups between its batches: for each group, a
    number no smaller than the values the group keeps (OTHER aside). They hold while the
    shard's mark in `breakdown_writers` is still `writer`, the one its last committed batch
    set: any other count into the shard's tenants sets another (`count`), and a drop in a
    group's size (retention, a tenant deleted, a rebuild clearing days) leaves them upper
    bounds still."""

    shard: int
    writer: uuid.UUID | None = None
    sizes: dict[Group, int] = field(default_factory=dict)
    # Set by a count, kept by `commit` once its transaction commits.
    staged: tuple[uuid.UUID, dict[Group, int]] | None = None

    def stage(self, writer: uuid.UUID, known: dict[Group, int],
              counted: dict[Group, int]) -> None:
        """What a batch leaves known, kept by `commit` once its transaction commits: the
        bounds that held before it (`known`), with its groups' (`counted`) over them."""
        if len(known) + len(counted) > MAX_BOUNDS:
            known = {}  # the groups of tenants gone quiet go; this batch's stay
        self.staged = (writer, {**known, **counted})

    def commit(self) -> None:
        if self.staged is not None:
            self.writer, self.sizes = self.staged
            self.staged = None


# The shards' marks, each row locked until the commit (so counts into a shard take turns);
# then each shard is marked as counted into by `$2`. Two statements: in one, the locking read
# would run after the upsert changed the row, and find no mark.
MARKS_SQL = """
SELECT shard, writer FROM breakdown_writers WHERE shard = ANY($1::integer[])
ORDER BY shard FOR UPDATE
"""
MARK_SQL = """
INSERT INTO breakdown_writers (shard, writer)
SELECT shard, $2 FROM unnest($1::integer[]) AS shard ORDER BY shard
ON CONFLICT (shard) DO UPDATE SET writer = excluded.writer
"""


async def _mark(conn: asyncpg.Connection, tenant_ids: Iterable[int],
                bounds: Bounds | None) -> tuple[uuid.UUID, dict[Group, int]]:
    """Marks the shards of `tenant_ids` with a fresh id, this count's; returns it, and the
    group sizes `bounds` knows when they still hold (else none)."""
    shards = sorted({Keys.shard_of(tenant_id) for tenant_id in tenant_ids})
    writer = uuid.uuid4()
    previous = {r["shard"]: r["writer"] for r in await conn.fetch(MARKS_SQL, shards)}
    await conn.execute(MARK_SQL, shards, writer)
    held = (bounds is not None and shards == [bounds.shard] and bounds.writer is not None
            and previous.get(bounds.shard) == bounds.writer)
    return writer, bounds.sizes if held else {}


def visitor_of(ip_hash: str, user_agent: str) -> bytes:
    return hashlib.blake2b(f"{ip_hash}\x00{user_agent}".encode(), digest_size=12).digest()


def key(dimension: str, value: str) -> str:
    """The one text of a (dimension, value) in a visitor's `seen`: the dimension's length
    first, so no two pairs share a key whatever characters they hold."""
    return f"{len(dimension)}:{dimension}{value}"


@functools.lru_cache(maxsize=4096)
def pair(of_key: str) -> tuple[str, str]:
    """(dimension, value) of a key."""
    length, rest = of_key.split(":", 1)
    return rest[:int(length)], rest[int(length):]


@functools.lru_cache(maxsize=16384)  # a site sends few distinct kinds of event
def keys_of(event_type: str, metadata: str, user_agent: str, page: str,
            country: str) -> tuple[str, ...]:
    """The keys of every (dimension, value) an event with these fields is counted under;
    `metadata` as stored (JSON text)."""
    decoded = orjson.loads(metadata)
    event = Event(event_type, decoded if isinstance(decoded, dict) else {}, user_agent, page,
                  country)
    return tuple(key(name, value) for name, value in dimensions.values(event))


def tally(rows: Iterable[asyncpg.Record], zones: dict[int, ZoneInfo],
          ) -> tuple[dict[Kind, int], dict[Visit, list]]:
    """Stored events (rows of EVENT_COLUMNS, in that order) counted per tenant, day and keys,
    and per visit the keys it was seen under and whether it sent a lead."""
    kinds: dict[Kind, int] = {}
    visits: dict[Visit, list] = {}
    for tenant_id, event_type, occurred_at, metadata, user_agent, referrer, ip_hash, country \
            in rows:
        zone = zones.get(tenant_id)
        if zone is None:
            continue  # the tenant is gone
        day = occurred_at.astimezone(zone).date()
        if not isinstance(metadata, str):
            metadata = orjson.dumps(metadata).decode()
        keys = keys_of(event_type, metadata, user_agent, referrer, country)
        kind = (tenant_id, day, keys)
        kinds[kind] = kinds.get(kind, 0) + 1
        visit = (tenant_id, day, visitor_of(ip_hash, user_agent))
        lead = event_type in LEAD_TYPES
        seen = visits.get(visit)
        if seen is None:
            visits[visit] = [set(keys), lead]
        else:
            seen[0].update(keys)
            seen[1] = seen[1] or lead
    return kinds, visits


async def zones_of(conn: asyncpg.Connection, tenant_ids: set[int]) -> dict[int, ZoneInfo]:
    rows = await conn.fetch("SELECT id, timezone FROM tenants WHERE id = ANY($1::bigint[])",
                            list(tenant_ids))
    return {row["id"]: ZoneInfo(row["timezone"]) for row in rows}


# The batch's rows go to Postgres by binary COPY into these: asyncpg checks each element of
# an array parameter (for nested arrays) at about a microsecond apiece, COPY no field. Emptied
# first, as `rebuild` counts several batches in one transaction.
STAGING_SQL = """
CREATE TEMP TABLE IF NOT EXISTS breakdown_groups (
    tenant_id bigint, day date, dimension text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS breakdown_staging
    (LIKE breakdown_rollups INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS visits_staging (
    tenant_id bigint, day date, visitor bytea, seen text, lead boolean) ON COMMIT DELETE ROWS;
DELETE FROM breakdown_groups; DELETE FROM breakdown_staging; DELETE FROM visits_staging
"""
GROUP_COLUMNS = ("tenant_id", "day", "dimension")
# How many values each group copied to `breakdown_groups` keeps already (OTHER aside),
# counted on the primary key, one range per group. A correlated count, not a join: the
# temporary tables have no statistics, and joins planned on none took up to a second a
# batch (nested loops over the batch's values).
SIZES_SQL = """
SELECT g.tenant_id, g.day, g.dimension,
       (SELECT count(*) FROM breakdown_rollups b
        WHERE b.tenant_id = g.tenant_id AND b.dimension = g.dimension AND b.day = g.day
          AND b.value <> $1) AS size
FROM breakdown_groups g
"""
# The values those groups keep (OTHER aside): at most the cap each.
KEPT_SQL = """
SELECT tenant_id, day, dimension, value
FROM unnest($1::bigint[], $2::date[], $3::text[]) AS g (tenant_id, day, dimension)
JOIN breakdown_rollups USING (tenant_id, day, dimension)
WHERE value <> $4
"""
VISIT_COLUMNS = ("tenant_id", "day", "visitor", "seen", "lead")
# The visits new today take their row whole: their every key is new. A visit's keys come as
# the text of an array (`array_text`), which a cast reads: cheaper than a binary array or a
# JSON one, whose elements take a subquery a row.
NEW_VISITS_SQL = """
INSERT INTO breakdown_visitors (tenant_id, day, visitor, seen, lead)
SELECT tenant_id, day, visitor, seen::text[], lead
FROM visits_staging
ON CONFLICT DO NOTHING
RETURNING tenant_id, day, visitor
"""
# The others' rows as they were, locked until the commit; then the batch's keys are added.
VISITS_BEFORE_SQL = """
SELECT b.tenant_id, b.day, b.visitor, b.seen, b.lead
FROM unnest($1::bigint[], $2::date[], $3::bytea[]) AS c (tenant_id, day, visitor)
JOIN breakdown_visitors b USING (tenant_id, day, visitor)
FOR UPDATE OF b
"""
ADD_VISITS_SQL = """
UPDATE breakdown_visitors b
SET seen = b.seen || ARRAY(SELECT unnest(s.seen::text[]) EXCEPT SELECT unnest(b.seen)),
    lead = b.lead OR s.lead
FROM unnest($1::bigint[], $2::date[], $3::bytea[]) AS c (tenant_id, day, visitor)
JOIN visits_staging s USING (tenant_id, day, visitor)
WHERE (b.tenant_id, b.day, b.visitor) = (c.tenant_id, c.day, c.visitor)
  AND NOT (b.seen @> s.seen::text[] AND (b.lead OR NOT s.lead))
"""
STAGED_COLUMNS = ("tenant_id", "day", "dimension", "value", "events", "visitors", "leads")
# Rows in one order for every count, so two counts that share rows take their locks in the
# same order (sorted by Postgres, in C, rather than by Python before the copy).
ADD_SQL = """
INSERT INTO breakdown_rollups AS r (tenant_id, day, dimension, value, events, visitors, leads)
SELECT tenant_id, day, dimension, value, events, visitors, leads FROM breakdown_staging
ORDER BY tenant_id, day, dimension, value COLLATE "C"
ON CONFLICT (tenant_id, dimension, day, value) DO UPDATE SET
    events = r.events + excluded.events,
    visitors = r.visitors + excluded.visitors,
    leads = r.leads + excluded.leads
"""


def array_text(values: Iterable[str]) -> str:
    """Postgres's text of a text[] holding `values`: each quoted, its quotes and backslashes
    escaped, so no value can end an element or the array."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


def _columns(rows: Iterable[tuple], width: int) -> list[list]:
    rows = list(rows)
    return [[row[i] for row in rows] for i in range(width)]


async def _over_cap(conn: asyncpg.Connection, events: Iterable[tuple[int, dt.date, str]],
                    cap: int, known: dict[Group, int]) -> tuple[dict[Fact, str], dict[Group, int]]:
    """For each (tenant, day, key) past the cap of its tenant, day and dimension, the key of
    the dimension's OTHER; `events` in the order their values were first seen. Also, per
    group of the batch, a bound on its size once the batch is counted. `known` holds bounds
    on the groups' sizes now: a group whose bound leaves room for every value of the batch
    is not counted."""
    candidates: dict[Group, list[str]] = defaultdict(list)
    for tenant_id, day, of_key in events:
        dimension, value = pair(of_key)
        if value != OTHER:  # each key comes once, so each value once per group
            candidates[(tenant_id, day, dimension)].append(value)
    after: dict[Group, int] = {}
    unknown: dict[Group, list[str]] = {}
    for group, values in candidates.items():
        bound = known.get(group)
        if bound is not None and bound + len(values) <= cap:
            after[group] = bound + len(values)  # were they all new
        else:
            unknown[group] = values
    if not unknown:
        return {}, after
    await conn.copy_records_to_table("breakdown_groups", columns=GROUP_COLUMNS,
                                     records=list(unknown))
    sizes: dict[Group, int] = {}
    for r in await conn.fetch(SIZES_SQL, OTHER):
        group, size = (r[0], r[1], r[2]), r[3]
        if size + len(unknown[group]) > cap:
            sizes[group] = size  # the batch's values could take it past the cap
        else:
            after[group] = size + len(unknown[group])
    if not sizes:
        return {}, after  # every value fits
    kept: dict[Group, set[str]] = defaultdict(set)
    for r in await conn.fetch(KEPT_SQL, *_columns(sizes, 3), OTHER):
        kept[(r[0], r[1], r[2])].add(r[3])
    over: dict[Fact, str] = {}
    for group, size in sizes.items():
        tenant_id, day, dimension = group
        existing = kept[group]
        for value in candidates[group]:
            if value in existing:
                continue
            if size < cap:
                size += 1
            else:
                over[(tenant_id, day, key(dimension, value))] = key(dimension, OTHER)
        after[group] = size
    return over, after


async def _visits_before(conn: asyncpg.Connection, visits: dict[Visit, list],
                         ) -> dict[Visit, tuple[list[str], bool]]:
    """Stores the batch's visits in the working set; returns, for those seen before, their
    keys and lead as they were."""
    await conn.copy_records_to_table(
        "visits_staging", columns=VISIT_COLUMNS,
        records=[(*visit, array_text(seen), lead)
                 for visit, (seen, lead) in visits.items()])
    new = {tuple(r) for r in await conn.fetch(NEW_VISITS_SQL)}
    if len(new) == len(visits):
        return {}
    others = _columns((visit for visit in visits if visit not in new), 3)
    before = {(r["tenant_id"], r["day"], r["visitor"]): (r["seen"], r["lead"])
              for r in await conn.fetch(VISITS_BEFORE_SQL, *others)}
    await conn.execute(ADD_VISITS_SQL, *others)
    return before


async def count(conn: asyncpg.Connection, rows: list[asyncpg.Record], *,
                cap: int = DEFAULT_CAP, bounds: Bounds | None = None) -> int:
    """Adds stored events to the breakdown rollups; call within the transaction that takes
    them off the queue (or, in a rebuild, clears what they were counted into). Returns the
    facts counted. `bounds`, a counter's of the rows' shard, is used and staged for the next
    batch: `bounds.commit()` once the transaction has committed."""
    if bounds is not None:
        bounds.staged = None  # what a batch that never committed staged
    if not rows:
        return 0
    zones = await zones_of(conn, {row["tenant_id"] for row in rows})
    kinds, visits = tally(rows, zones)
    if not kinds:
        return 0
    writer, known = await _mark(conn, {tenant_id for tenant_id, _, _ in kinds}, bounds)
    await conn.execute(STAGING_SQL)
    # Plain dicts, not Counters: a Counter's missing key costs a Python call, and these take
    # several keys an event.
    events: dict[Fact, int] = {}
    for (tenant_id, day, keys), n in kinds.items():
        for of_key in keys:
            fact = (tenant_id, day, of_key)
            events[fact] = events.get(fact, 0) + n
    over, after = await _over_cap(conn, events, cap, known)
    if bounds is not None:
        bounds.stage(writer, known, after)
    if over:
        capped: dict[Fact, int] = {}
        for fact, n in events.items():
            fact = (fact[0], fact[1], over.get(fact, fact[2]))
            capped[fact] = capped.get(fact, 0) + n
        events = capped
        for (tenant_id, day, _), seen in visits.items():
            seen[0] = {over.get((tenant_id, day, k), k) for k in seen[0]}

    before = await _visits_before(conn, visits)
    visitors: dict[Fact, int] = {}
    leads: dict[Fact, int] = {}
    for visit, (seen, lead) in visits.items():
        tenant_id, day, _ = visit
        old, was_lead = before.get(visit, ((), False))
        fresh = seen.difference(old) if old else seen
        for of_key in fresh:
            fact = (tenant_id, day, of_key)
            visitors[fact] = visitors.get(fact, 0) + 1
        if lead and not was_lead:
            fresh = seen.union(old)  # every value of the visit's day gains the lead
        if lead or was_lead:
            for of_key in fresh:
                fact = (tenant_id, day, of_key)
                leads[fact] = leads.get(fact, 0) + 1

    facts = events.keys() | leads.keys()
    await conn.copy_records_to_table(
        "breakdown_staging", columns=STAGED_COLUMNS,
        records=[(tenant_id, day, *pair(of_key), events.get(fact, 0), visitors.get(fact, 0),
                  leads.get(fact, 0))
                 for fact in facts for tenant_id, day, of_key in (fact,)])
    await conn.execute(ADD_SQL)
    await spans.invalidate(conn, {fact[:2] for fact in facts})
    return sum(n * len(keys) for (_, _, keys), n in kinds.items())


# Over the spans and single days that cover the period (rollups.spans); the top `$6` values
# (by visitors, then events, then value) and the sums of the rest in one more row, `rest`.
# Ties go by the value's bytes (UTF-8: code points), not the database's collation, which
# costs far more per comparison (1,000 pages of equal counts: 7 ms against under 1). The top
# comes from a bounded heap, not a sort of every value, and the rest is the whole's sums
# less the top's. `spans` counts the spans read that still exist, in the statement's own
# snapshot: a span and its breakdown rows are written and deleted together, so when all do,
# the sums are whole.
RESULTS_SQL = """
WITH summed AS MATERIALIZED (
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
), top AS MATERIALIZED (
    SELECT * FROM summed ORDER BY visitors DESC, events DESC, value COLLATE "C" LIMIT $6
), sums AS (
    SELECT coalesce(sum(visitors), 0)::bigint AS visitors,
           coalesce(sum(events), 0)::bigint AS events, coalesce(sum(leads), 0)::bigint AS leads
    FROM summed
    UNION ALL
    SELECT -coalesce(sum(visitors), 0)::bigint, -coalesce(sum(events), 0)::bigint,
           -coalesce(sum(leads), 0)::bigint
    FROM top
)
SELECT * FROM (
    SELECT false AS rest, value, visitors, events, leads, NULL::bigint AS spans FROM top
    UNION ALL
    SELECT true, NULL, sum(visitors)::bigint, sum(events)::bigint, sum(leads)::bigint,
           (SELECT count(*) FROM unnest($4::date[], $5::date[]) AS s (first_day, last_day)
            JOIN rollup_spans r ON r.tenant_id = $1 AND r.first_day = s.first_day
                                AND r.last_day = s.last_day)
    FROM sums
) AS answer
ORDER BY rest, visitors DESC, events DESC, value COLLATE "C"
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


def top(results: list[dict], other: dict, limit: int) -> tuple[list[dict], dict]:
    """The first `limit` of ranked `results`, and `other` with the rest added: what
    `breakdown` answers for `limit` when it answered `results` and `other` for a larger one."""
    rest = results[limit:]
    return results[:limit], {name: total + sum(r[name] for r in rest)
                             for name, total in other.items()}


DIMENSIONS_SQL = """
SELECT DISTINCT dimension FROM breakdown_rollups
WHERE tenant_id = $1 AND day BETWEEN $2 AND $3
"""


async def dimensions_seen(pool: asyncpg.Pool, tenant_id: int, first: dt.date,
                          last: dt.date) -> list[str]:
    return sorted(r["dimension"] for r in await pool.fetch(DIMENSIONS_SQL, tenant_id, first,
                                                           last))
