"""Draining the buffered raw events from the Redis streams into Postgres, exactly once.

Each shard's stream is read through a consumer group. A batch is copied into `events`, keyed
by its stream ids, and into the breakdown queue (rollups/breakdown_queue.py, which counts it
later) in one transaction. A batch holding an entry stored before (a replay after a failure)
breaks the key, rolls back and goes the slow way: copied into a staging table and inserted
from there, a stored entry conflicting and skipped, what was stored queued in the same
statement. After the commit the batch's tenants
get new rollup generations (realtime/generations.py), so no process serves an hourly series
it read before; the entries are acknowledged and deleted only then (a batch replayed after
a failure renews them again). Entries delivered to a consumer that died are claimed again
once idle, so a crash never loses one.

`drain_all` drains DRAIN_CONCURRENCY shards at a time, each on its own connection: a drain
alternates between Python (decoding) and Postgres (storing), so one at a time never keeps
more than one core busy, however far the backlog has grown.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from realtime import keys as k
from realtime import stream
from realtime.generations import renew_rollups
from realtime.scripts import Scripts
from rollups.faults import Fault, no_fault
from rollups.locks import Locking, shard_lock

log = logging.getLogger(__name__)

BATCH_SIZE = 5000
DRAIN_CONCURRENCY = 2
RECLAIM_IDLE_MS = 60_000
LOCK_CLASS = 0x6472  # advisory lock class of drains (see rollups.locks)

STAGING_SQL = """
CREATE TEMP TABLE IF NOT EXISTS events_staging
    (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""
# What was stored now (not a replay) is queued, and only that is counted into breakdowns.
INSERT_SQL = """
WITH stored AS (
    INSERT INTO events SELECT * FROM events_staging ON CONFLICT DO NOTHING RETURNING *)
INSERT INTO breakdown_queue SELECT * FROM stored
"""
COLUMNS = ("id", "tenant_id", "event_type", "occurred_at", "metadata", "user_agent",
           "referrer", "ip_hash", "country")


def consumer_name() -> str:
    # Stable per host: a scheduler restarted after a crash takes up its own unacknowledged
    # entries at once. Orphans of another host are claimed after RECLAIM_IDLE_MS.
    return socket.gethostname()


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def partition_name(month: dt.date) -> str:
    return f"events_{month.year:04d}_{month.month:02d}"


async def ensure_partitions(conn: asyncpg.Connection, months: set[dt.date]) -> None:
    for month in sorted(months):
        # Another drainer may create it at the same moment.
        with contextlib.suppress(asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF events "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"
            )


def to_record(shard: int, stream_id: bytes, fields: dict[bytes, bytes]) -> tuple:
    """A stream entry (realtime.stream) as a row of `events`; ValueError if it is not one."""
    try:
        event = stream.decode(fields[stream.FIELD])
    except KeyError:
        raise ValueError("a stream entry without its field") from None
    return (
        stream.entry_id(shard, stream_id),
        event.tenant_id,
        event.event_type,
        dt.datetime.fromtimestamp(event.ts / 1000, dt.UTC),
        orjson.dumps(event.metadata).decode(),
        event.user_agent,
        event.referrer,
        event.ip_hash,
        event.country,
    )


def to_records(shard: int, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple]:
    records = []
    for stream_id, fields in entries:
        if not fields:
            continue  # deleted while pending: only acknowledged
        try:
            records.append(to_record(shard, stream_id, fields))
        except ValueError as error:
            # Not written by our ingest path, so there is nothing to store; acknowledged
            # with the batch so it cannot stall the shard.
            log.error("stream entry %s of shard %d skipped: %s", stream_id, shard, error)
    return records


async def _read(redis: Redis, keys: k.Keys, shard: int, consumer: str, batch_size: int,
                reclaim_idle_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
    stream = keys.events(shard)
    # Our own unacknowledged entries first (a failed insert), then orphans of dead
    # consumers, then new entries.
    reply = await redis.xreadgroup(k.DRAIN_GROUP, consumer, {stream: "0"}, count=batch_size)
    if reply and reply[0][1]:
        return reply[0][1]
    _, claimed, *_ = await redis.xautoclaim(
        stream, k.DRAIN_GROUP, consumer, reclaim_idle_ms, "0-0", count=batch_size
    )
    if claimed:
        return claimed
    reply = await redis.xreadgroup(k.DRAIN_GROUP, consumer, {stream: ">"}, count=batch_size)
    return reply[0][1] if reply else []


async def _insert(conn: asyncpg.Connection, records: list[tuple],
                  fault: Fault = no_fault) -> int:
    """Stores the records and queues what was stored for the breakdowns, atomically;
    returns how many were stored (a replayed record was stored before)."""
    try:
        # Two COPYs: Postgres writes the rows in bulk, where an INSERT goes row by row.
        async with conn.transaction():
            await conn.copy_records_to_table("events", records=records, columns=COLUMNS)
            await conn.copy_records_to_table("breakdown_queue", records=records,
                                             columns=COLUMNS)
            # Stored, not yet committed: a crash here must leave the entries pending.
            fault("uncommitted")
        return len(records)
    except asyncpg.UniqueViolationError:
        pass  # a replay: the batch holds an entry stored before
    async with conn.transaction():
        await conn.execute(STAGING_SQL)
        await conn.copy_records_to_table("events_staging", records=records, columns=COLUMNS)
        status = await conn.execute(INSERT_SQL)  # "INSERT 0 <rows queued>"
        fault("uncommitted")
    return int(status.rsplit(" ", 1)[1])


async def _insert_one_by_one(conn: asyncpg.Connection, records: list[tuple],
                             fault: Fault = no_fault) -> int:
    """A batch Postgres refused: store what it accepts, so one bad row cannot stall a shard."""
    moved = 0
    for record in records:
        try:
            moved += await _insert(conn, [record], fault)
        except asyncpg.DataError as error:
            log.error("raw event %s of tenant %s not stored: %s", record[0], record[1],
                      type(error).__name__)
    return moved


async def ensure_group(redis: Redis, keys: k.Keys, shard: int) -> None:
    try:
        await redis.xgroup_create(keys.events(shard), k.DRAIN_GROUP, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


async def drain_shard(redis: Redis, pool: asyncpg.Pool, keys: k.Keys, scripts: Scripts,
                      shard: int, *, consumer: str, batch_size: int = BATCH_SIZE,
                      locking: Locking = Locking.TRY, known_months: set[dt.date] | None = None,
                      fault: Fault = no_fault, reclaim_idle_ms: int = RECLAIM_IDLE_MS) -> int:
    """Moves the shard's buffered events into Postgres; returns how many were inserted."""
    known_months = set() if known_months is None else known_months
    moved = 0
    async with pool.acquire() as conn, shard_lock(conn, LOCK_CLASS, shard, locking) as held:
        if not held:
            return 0
        while True:
            try:
                entries = await _read(redis, keys, shard, consumer, batch_size, reclaim_idle_ms)
            except ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                await ensure_group(redis, keys, shard)  # a new stream, or Redis restarted
                continue
            if not entries:
                return moved
            fault("read")
            records = to_records(shard, entries)
            months = {month_start(r[3].date()) for r in records} - known_months
            if months:
                await ensure_partitions(conn, months)
                known_months |= months
            try:
                moved += await _insert(conn, records, fault)
            except asyncpg.DataError:
                moved += await _insert_one_by_one(conn, records, fault)
            fault("inserted")
            await renew_rollups(scripts, keys, {record[1] for record in records})
            ids = [entry_id for entry_id, _ in entries]
            # Pipelined, so both reach Redis together; were the delete lost, the entry would
            # only linger in the stream, never be stored twice.
            async with redis.pipeline(transaction=False) as pipe:
                pipe.xack(keys.events(shard), k.DRAIN_GROUP, *ids)
                pipe.xdel(keys.events(shard), *ids)
                await pipe.execute()
            if len(entries) < batch_size:
                return moved


async def drain_all(redis: Redis, pool: asyncpg.Pool, keys: k.Keys, scripts: Scripts, *,
                    consumer: str, batch_size: int = BATCH_SIZE, locking: Locking = Locking.TRY,
                    known_months: set[dt.date] | None = None, fault: Fault = no_fault,
                    reclaim_idle_ms: int = RECLAIM_IDLE_MS,
                    concurrency: int = DRAIN_CONCURRENCY) -> int:
    """Drains every shard, `concurrency` at a time; returns the events stored."""
    known_months = set() if known_months is None else known_months
    waiting = list(range(k.SHARDS))
    moved = [0]

    async def drainer() -> None:
        while waiting:
            shard = waiting.pop(0)
            # Awaited first: `moved[0] += await ...` would read moved[0] before the await.
            stored = await drain_shard(redis, pool, keys, scripts, shard,
                                       consumer=consumer, batch_size=batch_size, locking=locking,
                                       known_months=known_months, fault=fault,
                                       reclaim_idle_ms=reclaim_idle_ms)
            moved[0] += stored

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, k.SHARDS)):
                group.create_task(drainer())
    except BaseExceptionGroup as errors:  # the others were cancelled: raise as one drain would
        first = errors.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return moved[0]
