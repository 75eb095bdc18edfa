"""Team invites: a second owner who sees the tenant and nobody else's; owners remove each other."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from app.accounts.tenants import create_tenant
from app.accounts.users import create_user
from tests.support.http import PASSWORD, login
from tests.support.settings import RUN

_names = iter(range(10**6))


async def make_invite(client, tenant_id: int) -> str:
    response = await client.post(f"/api/analytics/{tenant_id}/invites", json={})
    assert response.status_code == 201, await response.get_data()
    data = (await response.get_json())["data"]
    assert data["expires_at"]
    return urlsplit(data["url"]).path


async def form_post(client, path: str, fields: dict) -> object:
    page = await client.get(path)
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', (await page.get_data()).decode())
    return await client.post(path, form={"csrf_token": token.group(1), **fields})


async def test_an_invite_makes_a_second_owner_of_that_tenant_only(app, pool, tenant, owner):
    first = app.test_client()
    await login(first, owner.email)
    elsewhere = await create_tenant(pool, "Not theirs")
    path = await make_invite(first, tenant.id)

    newcomer = app.test_client()
    assert tenant.name in (await (await newcomer.get(path)).get_data()).decode()
    email = f"partner{next(_names)}.{RUN}@example.com"
    taken = await form_post(newcomer, path, {"email": email, "password": PASSWORD})
    assert taken.status_code == 303 and taken.headers["Location"] == f"/dashboard/{tenant.id}"
    # Logged in by taking it: sees the tenant, and nobody else's.
    assert (await newcomer.get(f"/api/analytics/{tenant.id}/today")).status_code == 200
    assert (await newcomer.get(f"/api/analytics/{elsewhere.id}/today")).status_code == 403

    team = (await (await first.get(f"/api/analytics/{tenant.id}/team")).get_json())["data"]
    assert {o["email"] for o in team["owners"]} == {owner.email, email}
    assert [o["you"] for o in team["owners"] if o["email"] == owner.email] == [True]

    # Single use: a second person gets the "not valid" page, and posting anyway (with a
    # CSRF token from the login page) makes no owner and no account.
    third = app.test_client()
    assert (await third.get(path)).status_code == 404
    login_page = (await (await third.get("/login")).get_data()).decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
    late = f"late{next(_names)}.{RUN}@example.com"
    posted = await third.post(path, form={"csrf_token": csrf, "email": late,
                                          "password": PASSWORD})
    assert posted.status_code == 404
    assert (await login(app.test_client(), late)).status_code == 401


async def test_a_logged_in_user_accepts_with_their_session(app, pool, tenant, owner):
    first = app.test_client()
    await login(first, owner.email)
    path = await make_invite(first, tenant.id)
    other_tenant = await create_tenant(pool, "Their own")
    existing = await create_user(pool, f"existing{next(_names)}.{RUN}@example.com", PASSWORD)
    from app.accounts.users import add_membership
    await add_membership(pool, existing.id, other_tenant.id)

    them = app.test_client()
    await login(them, existing.email)
    assert (await them.get(f"/api/analytics/{tenant.id}/today")).status_code == 403
    accepted = await form_post(them, path, {})
    assert accepted.status_code == 303
    assert (await them.get(f"/api/analytics/{tenant.id}/today")).status_code == 200


async def test_owners_remove_each_other_but_not_the_last(app, pool, tenant, owner):
    first = app.test_client()
    await login(first, owner.email)
    path = await make_invite(first, tenant.id)
    second = app.test_client()
    email = f"second{next(_names)}.{RUN}@example.com"
    await form_post(second, path, {"email": email, "password": PASSWORD})
    team = (await (await first.get(f"/api/analytics/{tenant.id}/team")).get_json())["data"]
    second_id = [o["id"] for o in team["owners"] if o["email"] == email][0]

    removed = await first.delete(f"/api/analytics/{tenant.id}/owners/{second_id}", json={})
    assert removed.status_code == 200
    assert (await second.get(f"/api/analytics/{tenant.id}/today")).status_code == 403
    last = await first.delete(f"/api/analytics/{tenant.id}/owners/{owner.id}", json={})
    assert last.status_code == 409


async def test_an_expired_invite_and_a_bad_password_leave_nothing(app, tenant, owner, clock):
    first = app.test_client()
    await login(first, owner.email)
    path = await make_invite(first, tenant.id)
    newcomer = app.test_client()
    short = await form_post(newcomer, path, {"email": f"x{RUN}@example.com", "password": "short"})
    assert short.status_code == 400 and "password" in (await short.get_data()).decode()
    clock.now += 7 * 86400 + 1
    assert (await newcomer.get(path)).status_code == 404


async def test_the_invite_page_sends_a_member_to_log_in_and_back(app, pool, tenant, owner):
    first = app.test_client()
    await login(first, owner.email)
    path = await make_invite(first, tenant.id)
    existing = await create_user(pool, f"back{next(_names)}.{RUN}@example.com", PASSWORD)

    browser = app.test_client()
    page = (await (await browser.get(path)).get_data()).decode()
    login_url = re.search(r'href="(/login\?next=[^"]+)" id="login-link"', page).group(1)
    assert login_url.endswith(path.replace("/", "%2F"))
    form = (await (await browser.get(login_url.replace("&amp;", "&"))).get_data()).decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    nxt = re.search(r'name="next" value="([^"]+)"', form).group(1)
    logged = await browser.post("/login", form={"csrf_token": csrf, "next": nxt,
                                                "email": existing.email, "password": PASSWORD})
    assert logged.status_code == 303 and logged.headers["Location"] == path
    accepted = await form_post(browser, path, {})
    assert accepted.status_code == 303
    assert (await browser.get(f"/api/analytics/{tenant.id}/today")).status_code == 200
