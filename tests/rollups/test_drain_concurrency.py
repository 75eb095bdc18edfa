"""The drain works on two shards at a time (rollups/drain.py `drain_all`), each in its own
transaction, and still stores every event exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from app.accounts.tenants import create_tenant
from rollups import drain
from rollups.drain import DRAIN_CONCURRENCY
from rollups.locks import Locking
from tests.support.http import track, visitor


async def test_two_shards_drain_at_once_and_every_event_is_stored_once(app, client, pool, keys,
                                                                      clock, monkeypatch):
    assert DRAIN_CONCURRENCY >= 2
    svc = app.extensions["analytics"]
    clock.now = dt.datetime(2026, 9, 15, 10, tzinfo=dt.UTC).timestamp()
    tenants = {}
    while len(tenants) < 3:  # three shards
        tenant = await create_tenant(pool, "Drained at once", "UTC")
        tenants.setdefault(keys.shard_of(tenant.id), tenant)
    for tenant in tenants.values():
        for n in range(4):
            assert (await track(client, tenant.id, headers=visitor(n))).status_code == 200

    inside, most = 0, 0  # batches being inserted, at any moment
    together = asyncio.Event()
    insert = drain._insert

    async def insert_waiting_for_another(conn, records, fault):
        # An insert waits (a while) for another drainer to reach its own: a drain that
        # finishes too fast to overlap the other's cannot pass for two at once.
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        if inside >= 2:
            together.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(together.wait(), 2)
            return await insert(conn, records, fault)
        finally:
            inside -= 1

    monkeypatch.setattr(drain, "_insert", insert_waiting_for_another)
    stored = await drain.drain_all(svc.redis, svc.pool, svc.keys, svc.scripts,
                                   consumer=drain.consumer_name(), locking=Locking.WAIT)
    assert most >= 2
    for tenant in tenants.values():
        count = await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1",
                                    tenant.id)
        assert count == 4
    assert stored >= 12  # what each drain stored is added up (earlier tests may leave more)
