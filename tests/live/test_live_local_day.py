"""The live socket shows the tenant's own day, also when its date is not UTC's."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import orjson
import pytest

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from realtime.snapshots import Snapshot
from tests.support.http import track, visitor

ZERO = Snapshot().as_dict()

#   zone                 earlier (UTC)       now (UTC)          earlier (local)    now (local)
#   Asia/Tokyo           2026-03-08 10:00    2026-03-08 23:30   2026-03-08 19:00   2026-03-09 08:30
#   Pacific/Kiritimati   2026-03-08 09:00    2026-03-08 11:00   2026-03-08 23:00   2026-03-09 01:00
#   America/Los_Angeles  2026-03-08 01:00    2026-03-08 06:00   2026-03-07 17:00   2026-03-07 22:00
# Ahead of UTC the earlier visits share now's UTC date but were yesterday for the tenant;
# behind it, all of them are today for the tenant, whose date is still UTC's yesterday.
CASES = [
    ("Asia/Tokyo", dt.datetime(2026, 3, 8, 10, tzinfo=dt.UTC),
     dt.datetime(2026, 3, 8, 23, 30, tzinfo=dt.UTC), 0),
    ("Pacific/Kiritimati", dt.datetime(2026, 3, 8, 9, tzinfo=dt.UTC),
     dt.datetime(2026, 3, 8, 11, tzinfo=dt.UTC), 0),
    ("America/Los_Angeles", dt.datetime(2026, 3, 8, 1, tzinfo=dt.UTC),
     dt.datetime(2026, 3, 8, 6, tzinfo=dt.UTC), 3),
]


@pytest.mark.parametrize(("zone", "earlier", "now", "earlier_today"), CASES,
                         ids=[case[0] for case in CASES])
async def test_the_live_snapshot_counts_the_local_day(client, pool, clock, zone, earlier, now,
                                                      earlier_today):
    tenant = await create_tenant(pool, f"Live in {zone}", zone)
    _, token = await create_token(pool, tenant.id, "tests")
    local = ZoneInfo(zone)
    assert earlier.date() == now.date()
    assert now.astimezone(local).date() != now.date()
    clock.now = earlier.timestamp()
    for n in range(3):
        assert (await track(client, tenant.id, "qr_scan", headers=visitor(n))).status_code == 200
    clock.now = now.timestamp()
    assert (await track(client, tenant.id, "pageview", headers=visitor(9))).status_code == 200

    async with client.websocket(f"/api/analytics/{tenant.id}/live",
                                headers={"Authorization": f"Bearer {token}"}) as ws:
        first = await receive(ws)
    assert first == {"type": "snapshot", "data": {
        **ZERO, "visitors_today": 1 + earlier_today, "pageviews_today": 1,
        "qr_scans": earlier_today, "active_visitors": 1}}


async def receive(ws, timeout: float = 5.0) -> dict:
    async with asyncio.timeout(timeout):
        return orjson.loads(await ws.receive())
