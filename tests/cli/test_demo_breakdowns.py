"""The demo's traffic makes every breakdown card meaningful: several values each, and leads."""

from __future__ import annotations

import datetime as dt

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from app.ops.demo import generate_week
from tests.support.apps import flush


async def test_demo_traffic_fills_every_card(app, client, pool, clock):
    tenant = await create_tenant(pool, "Demo breakdowns", "Europe/Madrid")
    _, token = await create_token(pool, tenant.id)
    headers = {"Authorization": f"Bearer {token}"}
    clock.now = dt.datetime(2026, 10, 20, 21, tzinfo=dt.UTC).timestamp()
    assert await generate_week(app.extensions["analytics"].ingestor, tenant, clock.now) > 200
    await flush(app)

    async def values(dimension):
        response = await client.get(f"/api/analytics/{tenant.id}/breakdown/{dimension}",
                                    headers=headers, query_string={"limit": "100"})
        return {r["value"]: r for r in (await response.get_json())["data"]["results"]}

    for dimension in ("source", "page", "referrer", "utm_source", "utm_medium", "utm_campaign",
                      "device", "browser", "os", "country", "product", "button_location",
                      "currency"):
        assert len(await values(dimension)) >= 2, dimension
    sources = await values("source")
    assert {"Instagram", "Google", "Facebook", "WhatsApp", "Direct", "QR code"} <= set(sources)
    assert sum(r["leads"] for r in sources.values()) > 0
    assert {"ES", "FR", "MX"} <= set(await values("country"))
    response = await client.get(f"/api/analytics/{tenant.id}/stats", headers=headers)
    totals = (await response.get_json())["data"]["totals"]
    assert 0 < totals["leads"] < totals["visitors"]
