"""The drain works on two shards at a time (rollups/drain.py `drain_all`), each in its own
transaction, and still stores every event exactly once."""

from __future__ import annotations

import datetime as dt

from app.accounts.tenants import create_tenant
from rollups.drain import DRAIN_CONCURRENCY, consumer_name, drain_all
from rollups.locks import Locking
from tests.support.http import track, visitor


async def test_two_shards_drain_at_once_and_every_event_is_stored_once(app, client, pool, keys,
                                                                      clock):
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

    between, most = 0, 0

    def fault(step: str) -> None:  # batches read and not yet committed, at any moment
        nonlocal between, most
        if step == "read":
            between += 1
            most = max(most, between)
        elif step == "inserted":
            between -= 1

    stored = await drain_all(svc.redis, svc.pool, svc.keys, svc.scripts, consumer=consumer_name(),
                             locking=Locking.WAIT, fault=fault)
    assert most >= 2
    for tenant in tenants.values():
        count = await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1",
                                    tenant.id)
        assert count == 4
    assert stored >= 12  # what each drain stored is added up (earlier tests may leave more)
