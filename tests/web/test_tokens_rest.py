"""Owners manage their API tokens over REST, as the dashboard's tokens panel does."""

from __future__ import annotations

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from tests.support.http import login


async def test_token_lifecycle_from_the_dashboards_calls(client, tenant, owner):
    await login(client, owner.email)
    base = f"/api/analytics/{tenant.id}/tokens"

    created = await client.post(base, json={"label": "reports", "expires_in_days": 30})
    assert created.status_code == 201, await created.get_data()
    data = (await created.get_json())["data"]
    assert data["token"].startswith("lat_") and data["label"] == "reports"
    assert data["expires_at"] is not None and data["last_used_at"] is None
    secret = {"Authorization": f"Bearer {data['token']}"}

    # The new token reads the tenant's numbers (from a client without the owner's cookie).
    reader = client.app.test_client(use_cookies=False)
    assert (await reader.get(f"/api/analytics/{tenant.id}", headers=secret)).status_code == 200

    listed = (await (await client.get(base)).get_json())["data"]["tokens"]
    mine = [t for t in listed if t["id"] == data["id"]]
    assert len(mine) == 1 and "token" not in mine[0]
    assert mine[0]["last_used_at"] is not None  # the read above was recorded

    gone = await client.delete(f"{base}/{data['id']}", json={})
    assert gone.status_code == 200
    assert (await reader.get(f"/api/analytics/{tenant.id}", headers=secret)).status_code == 401
    again = await client.delete(f"{base}/{data['id']}", json={})
    assert again.status_code == 404
    listed = (await (await client.get(base)).get_json())["data"]["tokens"]
    assert [t["revoked_at"] for t in listed if t["id"] == data["id"]] != [None]


async def test_tokens_and_foreign_tenants_cannot_manage(client, pool, tenant, owner, auth_headers):
    # A tenant token reads; it manages nothing.
    anonymous = client.app.test_client(use_cookies=False)
    refused = await anonymous.post(f"/api/analytics/{tenant.id}/tokens", json={},
                                   headers=auth_headers)
    assert refused.status_code == 403
    # An owner cannot reach another tenant's tokens, by list or by id.
    other = await create_tenant(pool, "Someone else's cafe")
    await login(client, owner.email)
    assert (await client.get(f"/api/analytics/{other.id}/tokens")).status_code == 403
    created = (await (await client.post(f"/api/analytics/{tenant.id}/tokens", json={}))
               .get_json())["data"]
    assert (await client.delete(f"/api/analytics/{other.id}/tokens/{created['id']}", json={})
            ).status_code == 403
    # Nor by naming another tenant's token id under their own tenant.
    foreign, plaintext = await create_token(pool, other.id, "theirs")
    wrong = await client.delete(f"/api/analytics/{tenant.id}/tokens/{foreign.id}", json={})
    assert wrong.status_code == 404
    still = await anonymous.get(f"/api/analytics/{other.id}/today",
                                headers={"Authorization": f"Bearer {plaintext}"})
    assert still.status_code == 200


async def test_cross_site_form_and_text_plain_are_refused(client, tenant, owner):
    """A page on another site can post a form or text/plain with the owner's cookie; both
    are refused and make no token."""
    await login(client, owner.email)
    base = f"/api/analytics/{tenant.id}/tokens"
    before = len((await (await client.get(base)).get_json())["data"]["tokens"])
    form = await client.post(base, form={"label": "evil"},
                             headers={"Origin": "https://evil.example"})
    assert form.status_code == 400
    assert "CSRF" in (await form.get_json())["error"]
    plain = await client.post(base, data=b'{"label": "evil"}',
                              headers={"Content-Type": "text/plain"})
    assert plain.status_code == 400
    # With a CSRF header but not JSON: still refused (415), the body is never read as JSON.
    after = len((await (await client.get(base)).get_json())["data"]["tokens"])
    assert after == before


async def test_bad_bodies_get_clear_400s(client, tenant, owner):
    await login(client, owner.email)
    base = f"/api/analytics/{tenant.id}/tokens"
    for body in ({"expires_in_days": 0}, {"label": 5}, [], {"label": "x" * 101}):
        response = await client.post(base, json=body)
        assert response.status_code == 400, body
        assert (await response.get_json())["error"].startswith("send ")
