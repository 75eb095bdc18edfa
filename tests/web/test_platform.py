"""The hosting platform provisions tenants, owners and tenant tokens with a platform token."""

from __future__ import annotations

import pytest

from app.accounts.tokens import create_token
from tests.support.http import login, track
from tests.support.settings import RUN


@pytest.fixture
async def platform(pool) -> dict[str, str]:
    _, plaintext = await create_token(pool, None, "platform tests")
    return {"Authorization": f"Bearer {plaintext}"}


async def test_a_platform_token_provisions_a_tenant_that_then_reads_its_numbers(
        app, platform, clock):
    client = app.test_client(use_cookies=False)
    made = await client.post("/api/platform/tenants", headers=platform,
                             json={"name": "Bakery", "timezone": "Europe/Madrid"})
    assert made.status_code == 201, await made.get_data()
    tenant = (await made.get_json())["data"]
    assert tenant["name"] == "Bakery" and tenant["timezone"] == "Europe/Madrid"

    email = f"baker.{RUN}@example.com"
    user = await client.post("/api/platform/users", headers=platform, json={
        "email": email, "password": "long enough pw", "tenant_id": tenant["id"]})
    assert user.status_code == 201
    assert (await user.get_json())["data"]["email"] == email

    issued = await client.post(f"/api/platform/tenants/{tenant['id']}/tokens",
                               headers=platform, json={"label": "site"})
    assert issued.status_code == 201
    token = (await issued.get_json())["data"]["token"]

    assert (await track(client, tenant["id"])).status_code == 200
    today = await client.get(f"/api/analytics/{tenant['id']}/today",
                             headers={"Authorization": f"Bearer {token}"})
    assert today.status_code == 200
    # The platform token itself reads nobody's numbers.
    assert (await client.get(f"/api/analytics/{tenant['id']}/today",
                             headers=platform)).status_code == 403
    # The new owner logs in and sees the tenant.
    owner = app.test_client()
    assert (await login(owner, email, "long enough pw")).status_code == 200
    assert (await owner.get(f"/api/analytics/{tenant['id']}/tokens")).status_code == 200


async def test_tenant_tokens_and_sessions_cannot_provision(app, tenant, auth_headers, owner):
    client = app.test_client(use_cookies=False)
    body = {"name": "Sneaky"}
    assert (await client.post("/api/platform/tenants", json=body)).status_code == 401
    assert (await client.post("/api/platform/tenants", json=body,
                              headers=auth_headers)).status_code == 403
    session = app.test_client()
    await login(session, owner.email)
    assert (await session.post("/api/platform/tenants", json=body)).status_code == 403
    assert (await session.post(f"/api/platform/tenants/{tenant.id}/tokens",
                               json={})).status_code == 403


async def test_platform_input_errors(app, platform, tenant, owner):
    client = app.test_client(use_cookies=False)
    bad_zone = await client.post("/api/platform/tenants", headers=platform,
                                 json={"name": "X", "timezone": "Mars/Base"})
    assert bad_zone.status_code == 400 and "timezone" in (await bad_zone.get_json())["error"]
    taken = await client.post("/api/platform/users", headers=platform, json={
        "email": owner.email, "password": "long enough pw", "tenant_id": tenant.id})
    assert taken.status_code == 409
    missing = await client.post("/api/platform/tenants/999999999/tokens", headers=platform,
                                json={})
    assert missing.status_code == 404


async def test_cli_creates_and_lists_platform_tokens(settings, database, app):
    import asyncio
    import json

    from tests.support.servers import run_cli

    created = await asyncio.to_thread(
        run_cli, settings, "token", "create", "--platform", "--label", "host", "--json")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)
    assert token["kind"] == "platform" and token["tenant_id"] is None
    client = app.test_client(use_cookies=False)
    made = await client.post("/api/platform/tenants", json={"name": "From the CLI"},
                             headers={"Authorization": f"Bearer {token['token']}"})
    assert made.status_code == 201

    listed = await asyncio.to_thread(run_cli, settings, "token", "list", "--platform", "--json")
    assert token["id"] in [t["id"] for t in json.loads(listed.stdout)["tokens"]]
    both = await asyncio.to_thread(
        run_cli, settings, "token", "create", "--platform", "--tenant", "1")
    assert both.returncode != 0 and "either" in both.stderr
