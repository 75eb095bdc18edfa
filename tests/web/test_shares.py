"""Share links: a read-only dashboard without login, that expires and can be ended at once."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import orjson
import pytest
from quart.testing.connections import WebsocketDisconnectError

from tests.support.apps import serving_app
from tests.support.http import login


async def make_share(client, tenant_id: int, **body) -> dict:
    response = await client.post(f"/api/analytics/{tenant_id}/shares", json=body)
    assert response.status_code == 201, await response.get_data()
    return (await response.get_json())["data"]


async def receive(ws, timeout: float = 5.0) -> dict:
    async with asyncio.timeout(timeout):
        return orjson.loads(await ws.receive())


async def test_a_share_link_opens_without_login_and_shows_no_owner(app, tenant, owner):
    client = app.test_client()
    await login(client, owner.email)
    share = await make_share(client, tenant.id)
    path = urlsplit(share["url"]).path
    assert path.startswith("/s/las_") and share["url"].startswith("http")

    stranger = app.test_client(use_cookies=False)
    page = await stranger.get(path)
    assert page.status_code == 200
    html = (await page.get_data()).decode()
    assert tenant.name in html
    assert owner.email not in html
    for control in ("csrf_token", "/tokens", "/shares", "/invites", "logout", "snippet"):
        assert control not in html, control

    # The live socket takes the share as credentials for its one tenant, and no other.
    token = path.rsplit("/", 1)[1]
    async with stranger.websocket(f"/api/analytics/{tenant.id}/live?share={token}") as ws:
        assert (await receive(ws))["type"] == "snapshot"
    other = await stranger.get(f"/api/analytics/{tenant.id}/tokens",
                               headers={"Authorization": f"Bearer {token}"})
    assert other.status_code == 403  # a share reads; it manages nothing


async def test_revoking_ends_the_page_at_once(app, tenant, owner):
    client = app.test_client()
    await login(client, owner.email)
    share = await make_share(client, tenant.id)
    path = urlsplit(share["url"]).path
    stranger = app.test_client(use_cookies=False)
    assert (await stranger.get(path)).status_code == 200
    assert (await client.delete(f"/api/analytics/{tenant.id}/shares/{share['id']}",
                                json={})).status_code == 200
    assert (await stranger.get(path)).status_code == 404
    listed = (await (await client.get(f"/api/analytics/{tenant.id}/shares")).get_json())
    assert [s["revoked_at"] is not None for s in listed["data"]["shares"]
            if s["id"] == share["id"]] == [True]


async def test_a_share_link_expires(app, tenant, owner, clock):
    client = app.test_client()
    await login(client, owner.email)
    share = await make_share(client, tenant.id, expires_in_days=1)
    path = urlsplit(share["url"]).path
    stranger = app.test_client(use_cookies=False)
    assert (await stranger.get(path)).status_code == 200
    clock.now += 86400 + 1
    assert (await stranger.get(path)).status_code == 404
    token = path.rsplit("/", 1)[1]
    async with stranger.websocket(f"/api/analytics/{tenant.id}/live?share={token}") as ws:
        from quart.testing import WebsocketResponseError

        with pytest.raises(WebsocketResponseError) as refused:
            await receive(ws)
    assert refused.value.response.status_code == 401


async def test_revoking_closes_an_open_shared_socket(settings, tenant, owner):
    async with serving_app(settings, live_reauth_interval=0.2) as app:
        client = app.test_client()
        await login(client, owner.email)
        share = await make_share(client, tenant.id)
        token = urlsplit(share["url"]).path.rsplit("/", 1)[1]
        stranger = app.test_client(use_cookies=False)
        async with stranger.websocket(f"/api/analytics/{tenant.id}/live?share={token}") as ws:
            assert (await receive(ws))["type"] == "snapshot"
            await asyncio.sleep(0.5)  # rechecked, still valid: the socket stays
            assert (await client.delete(f"/api/analytics/{tenant.id}/shares/{share['id']}",
                                        json={})).status_code == 200
            with pytest.raises(WebsocketDisconnectError) as closed:
                await receive(ws)
    assert closed.value.args[0] == 4401


async def test_only_owners_make_share_links(app, tenant, auth_headers):
    client = app.test_client(use_cookies=False)
    assert (await client.post(f"/api/analytics/{tenant.id}/shares", json={},
                              headers=auth_headers)).status_code == 403
    assert (await client.get("/s/las_nothing")).status_code == 404
