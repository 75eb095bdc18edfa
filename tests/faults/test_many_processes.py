"""Three `web` processes and one `scheduler`, as a scaled-out deployment runs them.

Under `TEST_REDIS=cluster` (the second pass of `make test`) they share a 3-master Redis
Cluster; tenants are picked so their keys fall on different shards, hence slots and nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal

import httpx
import orjson
from websockets.asyncio.client import connect

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from realtime.keys import SHARDS, Keys
from tests.support.http import bearer
from tests.support.polling import eventually
from tests.support.servers import start_process, web_server

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.{}"


async def _tenants_on_distinct_shards(pool, count: int):
    found = {}
    while len(found) < count:
        tenant = await create_tenant(pool, "Spread", "UTC")
        found.setdefault(Keys.shard_of(tenant.id), tenant)
    return list(found.values())


async def test_three_web_processes_and_a_scheduler(settings, database, pool):
    tenants = await _tenants_on_distinct_shards(pool, 4)
    assert len({Keys.shard_of(t.id) for t in tenants}) == 4 <= SHARDS
    tokens = {t.id: (await create_token(pool, t.id))[1] for t in tenants}
    scheduler = start_process(settings, "scheduler", FLUSH_INTERVAL_SECONDS=1)
    rng = random.Random(5)
    sent = {t.id: 0 for t in tenants}
    try:
        async with contextlib.AsyncExitStack() as stack:
            # Behind a proxy, as in production: each event names a client address of its
            # own, so the limit per address stays out of this.
            webs = [await stack.enter_async_context(web_server(settings, TRUSTED_PROXY_HOPS=1))
                    for _ in range(3)]
            sockets = {}
            for n, tenant in enumerate(tenants):  # each tenant watched on a different process
                url = f"{webs[n % 3].ws}/api/analytics/{tenant.id}/live"
                ws = await stack.enter_async_context(
                    connect(url, additional_headers=bearer(tokens[tenant.id])))
                assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "snapshot"
                sockets[tenant.id] = ws
            async with httpx.AsyncClient() as http:
                for i in range(120):
                    tenant = rng.choice(tenants)
                    response = await http.post(
                        f"{webs[i % 3].http}/api/analytics/track",
                        json={"tenant_id": tenant.id, "event_type": "pageview"},
                        headers={"User-Agent": BROWSER.format(rng.randint(0, 9)),
                                 "X-Forwarded-For": f"198.51.100.{i + 1}"})
                    assert response.status_code == 200
                    sent[tenant.id] += 1
            # Every socket ends up with its own tenant's exact count, whoever accepted the events.
            for tenant in tenants:
                ws = sockets[tenant.id]
                async with asyncio.timeout(10):
                    while True:
                        frame = orjson.loads(await ws.recv())
                        if frame["type"] != "event" and \
                                frame["data"]["pageviews_today"] == sent[tenant.id]:
                            break
        # The scheduler, draining and flushing every second, catches up with all of it.
        ids = [t.id for t in tenants]

        async def caught_up() -> bool:
            rows = dict(await pool.fetch(
                """SELECT tenant_id, sum(pageviews) FROM daily_rollups
                   WHERE tenant_id = ANY($1::bigint[]) GROUP BY tenant_id""", ids))
            raw = await pool.fetchval(
                "SELECT count(*) FROM events WHERE tenant_id = ANY($1::bigint[])", ids)
            assert all(rows.get(t, 0) <= n for t, n in sent.items())  # never more
            return rows == sent and raw == sum(sent.values())

        await eventually(caught_up, 20, interval=0.5, what="the rollups holding every event")
    finally:
        scheduler.send_signal(signal.SIGTERM)
        await asyncio.to_thread(scheduler.communicate, timeout=30)
