"""A drain that crashes between reading the stream and committing to Postgres loses nothing
and stores nothing twice: its entries stay pending in the consumer group until a commit."""

from __future__ import annotations

import datetime as dt

import pytest

from app.accounts.tenants import create_tenant
from realtime import keys as k
from realtime import stream
from rollups.drain import consumer_name, drain_shard
from rollups.locks import Locking
from tests.support.http import track, visitor

EVENTS = 6


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", ["read", "uncommitted", "inserted"])
async def test_a_crash_before_the_ack_leaves_the_entries_pending(app, client, pool, redis, keys,
                                                                clock, step):
    # read         delivered to this consumer, nothing stored yet
    # uncommitted  inserted inside the transaction, which the crash rolls back
    # inserted     committed, not yet acknowledged: the replay must not store them again
    svc = app.extensions["analytics"]
    tenant = await create_tenant(pool, f"Drain crash at {step}", "UTC")
    shard = keys.shard_of(tenant.id)
    clock.now = dt.datetime(2026, 9, 14, 10, tzinfo=dt.UTC).timestamp()
    for n in range(EVENTS):
        assert (await track(client, tenant.id, headers=visitor(n))).status_code == 200
    sent = await entries_of(redis, keys, tenant.id)
    assert len(sent) == EVENTS

    fired = []

    def fault(name: str) -> None:
        fired.append(name)
        crash_at(step)(name)

    with pytest.raises(Crash):
        await drain_shard(svc.redis, svc.pool, svc.keys, svc.scripts, shard,
                          consumer=consumer_name(), locking=Locking.WAIT, fault=fault)
    assert fired[-1] == step
    # Nothing acknowledged: every entry is still pending in the group, and still in the stream.
    assert sent <= await pending(redis, keys, shard)
    assert sent <= await entries_of(redis, keys, tenant.id)
    expected_rows = EVENTS if step == "inserted" else 0
    assert len(await stored(pool, tenant.id)) == expected_rows

    # The next drain takes its own pending entries up and stores each exactly once.
    await drain_shard(svc.redis, svc.pool, svc.keys, svc.scripts, shard, consumer=consumer_name(),
                      locking=Locking.WAIT)
    rows = await stored(pool, tenant.id)
    assert len(rows) == EVENTS
    assert set(rows) == {stream.entry_id(shard, i) for i in sent}
    assert not sent & await pending(redis, keys, shard)
    assert not await entries_of(redis, keys, tenant.id)


def crash_at(step: str):
    def fault(name: str) -> None:
        if name == step:
            raise Crash(name)
    return fault


async def entries_of(redis, keys, tenant_id: int) -> set[bytes]:
    """The stream ids of the tenant's entries still in its shard's stream."""
    return {
        stream_id for stream_id, fields in await redis.xrange(keys.events(keys.shard_of(tenant_id)))
        if fields and stream.decode(fields[stream.FIELD]).tenant_id == tenant_id
    }


async def pending(redis, keys, shard: int) -> set[bytes]:
    """Entries delivered to a consumer of the drain group and not acknowledged."""
    rows = await redis.xpending_range(keys.events(shard), k.DRAIN_GROUP, min="-", max="+",
                                      count=100_000)
    return {row["message_id"] for row in rows}


async def stored(pool, tenant_id: int) -> list[str]:
    return [row["id"] for row in await pool.fetch(
        "SELECT id FROM events WHERE tenant_id = $1", tenant_id)]
