"""/login and /logout: cookies, session ids, CSRF, throttling, and what is never kept in clear."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import statistics
import time

import pytest

from app.accounts.sessions import SESSION_LIFETIME
from app.accounts.throttle import ACCOUNT_LIMIT, CLIENT_LIMIT
from app.accounts.users import create_user
from app.factory import create_app
from realtime.keys import LOGIN_WINDOW_SECONDS
from tests.support.http import AUTH_COOKIE, PASSWORD, cookie_from, from_address, login, new_address
from tests.support.routes import sample_path
from tests.support.settings import RUN

WRONG = "not the password at all"


def set_cookie_header(response, name: str) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}="))


async def login_form(client, address: str | None = None) -> str:
    """GET /login and the CSRF token of its form."""
    page = await client.get("/login")
    assert page.status_code == 200
    html = (await page.get_data()).decode()
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


async def post_form(client, fields: dict, address: str | None = None, path: str = "/login"):
    return await client.post(path, form=fields, scope_base=from_address(address or new_address()))


# -- logging in and out --------------------------------------------------------------------


async def test_json_login_sets_a_session_cookie_that_opens_the_dashboard(client, owner, tenant):
    response = await login(client, owner.email)
    assert response.status_code == 200
    assert await response.get_json() == {
        "success": True, "user": {"id": owner.id, "email": owner.email},
    }
    header = set_cookie_header(response, AUTH_COOKIE)
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert str(tenant.id) in (await page.get_data()).decode()


async def test_email_is_matched_without_case(client, owner):
    response = await login(client, f"  {owner.email.upper()} ")
    assert response.status_code == 200


async def test_form_login_redirects_to_the_dashboard(client, owner):
    token = await login_form(client)
    response = await post_form(
        client, {"email": owner.email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/dashboard")
    assert cookie_from(response)
    assert (await client.get("/dashboard")).status_code == 200


async def test_login_page_runs_no_script_and_loads_nothing_from_elsewhere(client):
    response = await client.get("/login")
    html = (await response.get_data()).decode()
    assert response.content_type.startswith("text/html")
    assert "<script" not in html and "http" not in html.replace('action="/login"', "")
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("email", "password"),
    [(f"nobody.{RUN}@example.com", PASSWORD), (None, WRONG)],
    ids=["unknown email", "wrong password"],
)
async def test_wrong_credentials_get_401_json(client, owner, email, password):
    response = await login(client, email or owner.email, password)
    assert response.status_code == 401
    assert await response.get_json() == {"success": False, "error": "wrong email or password"}
    assert cookie_from(response) is None


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"email": "a@example.com"}', "application/json", 400),
        (b'{"email": 1, "password": "x"}', "application/json", 400),
        (b'["a@example.com", "pw"]', "application/json", 400),
        (b"not json", "application/json", 400),
        (b"email=a@example.com&password=x", "text/plain", 400),  # no CSRF token: refused first
    ],
)
async def test_malformed_logins(client, body, content_type, status):
    response = await client.post("/login", data=body, headers={"Content-Type": content_type},
                                 scope_base=from_address(new_address()))
    assert response.status_code == status
    assert (await response.get_json())["success"] is False


async def test_session_id_changes_at_login_and_the_old_one_dies(app, owner, tenant):
    client = app.test_client()
    first = cookie_from(await login(client, owner.email))
    second = cookie_from(await login(client, owner.email))
    assert first and second and first != second
    probe = app.test_client(use_cookies=False)
    headers = {"Cookie": f"{AUTH_COOKIE}={first}"}
    assert (await probe.get("/dashboard", headers=headers)).status_code == 303
    headers = {"Cookie": f"{AUTH_COOKIE}={second}"}
    assert (await probe.get("/dashboard", headers=headers)).status_code == 200


async def test_logout_ends_the_session_on_the_server(app, owner):
    client = app.test_client()
    stolen = cookie_from(await login(client, owner.email))
    response = await client.post("/logout", json={})
    assert response.status_code == 200
    assert f"{AUTH_COOKIE}=;" in set_cookie_header(response, AUTH_COOKIE)
    # A copy of the cookie taken before the logout opens nothing either.
    probe = app.test_client(use_cookies=False)
    headers = {"Cookie": f"{AUTH_COOKIE}={stolen}"}
    assert (await probe.get("/dashboard", headers=headers)).status_code == 303


async def test_form_logout_needs_the_csrf_token_and_redirects(client, owner):
    await login(client, owner.email)
    refused = await post_form(client, {}, path="/logout")
    assert refused.status_code == 400
    assert (await client.get("/dashboard")).status_code == 200  # still logged in
    token = await login_form(client)
    response = await post_form(client, {"csrf_token": token}, path="/logout")
    assert response.status_code == 303 and response.headers["Location"].endswith("/login")
    assert (await client.get("/dashboard")).status_code == 303


async def test_sessions_expire(client, owner, clock):
    assert (await login(client, owner.email)).status_code == 200
    clock.now += SESSION_LIFETIME.total_seconds() - 60
    assert (await client.get("/dashboard")).status_code == 200
    clock.now += 120
    assert (await client.get("/dashboard")).status_code == 303


async def test_cookies_are_secure_in_production(settings, database, redis, pool):
    app = create_app(dataclasses.replace(settings, env="production"))
    async with app.test_app():
        user = await create_user(pool, f"prod.{RUN}@example.com", PASSWORD)
        client = app.test_client()
        response = await client.post(
            "/login", json={"email": user.email, "password": PASSWORD}, scheme="https",
            scope_base=from_address(new_address()),
        )
        assert response.status_code == 200
        for name in (AUTH_COOKIE, "session"):  # the second carries the CSRF secret
            header = set_cookie_header(response, name)
            assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header


# -- CSRF --------------------------------------------------------------------------------


async def test_form_login_without_csrf_token_is_refused(client, owner):
    await login_form(client)  # the session holds a CSRF secret; the post just does not send it
    response = await post_form(client, {"email": owner.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in (await response.get_json())["error"]
    assert cookie_from(response) is None


@pytest.mark.parametrize("tamper", ["another session's", "altered", "empty"])
async def test_form_login_with_a_bad_csrf_token_is_refused(app, client, owner, tamper):
    token = await login_form(client)
    if tamper == "another session's":
        token = await login_form(app.test_client())
    elif tamper == "altered":
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    else:
        token = ""
    response = await post_form(
        client, {"email": owner.email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 400
    assert cookie_from(response) is None


async def test_csrf_token_from_before_login_is_useless_after_it(client, owner):
    before = await login_form(client)
    assert (await login(client, owner.email)).status_code == 200
    response = await post_form(client, {"csrf_token": before}, path="/logout")
    assert response.status_code == 400


async def test_every_state_changing_route_refuses_forms_without_csrf(app, tenant):
    """Besides the public tracking endpoint (no cookies, no session), every POST/PUT/PATCH/
    DELETE route refuses a form without the token: a route added later is covered too."""

    exempt = {"/api/analytics/track"}
    bodies = [{"form": {"x": "1"}}, {"data": b"x", "headers": {"Content-Type": "text/plain"}}, {}]
    client = app.test_client()
    checked = []
    for rule in app.url_map.iter_rules():
        methods = rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
        if rule.websocket or rule.rule in exempt or not methods:
            continue
        for method in methods:
            for body in bodies:
                path = sample_path(rule.rule, tenant.id)
                response = await client.open(path, method=method, **body)
                assert response.status_code == 400, (method, rule.rule, body)
            checked.append(f"{method} {rule.rule}")
    assert {"POST /login", "POST /logout"} <= set(checked)


# -- throttling --------------------------------------------------------------------------


async def test_account_is_throttled_after_a_handful_of_failures(client, owner, clock):
    # All from one client: another client is let through after a delay instead
    # (tests/test_login_throttle.py).
    guesser = new_address()
    for _ in range(ACCOUNT_LIMIT):
        assert (await login(client, owner.email, WRONG, address=guesser)).status_code == 401
    throttled = await login(client, owner.email, WRONG, address=guesser)
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= LOGIN_WINDOW_SECONDS
    assert (await throttled.get_json())["success"] is False
    # Even the right password is refused while locked: a lock must not confirm a guess.
    assert (await login(client, owner.email, address=guesser)).status_code == 429
    # Refused attempts do not extend the lock: the window after the failures frees it.
    clock.now += LOGIN_WINDOW_SECONDS + 1
    assert (await login(client, owner.email, address=guesser)).status_code == 200


async def test_a_success_resets_the_account_counter(client, owner, clock):
    # ... of the client that succeeded: its own typos are forgiven, others' failures are not
    # (tests/test_login_throttle.py).
    typist = new_address()
    for _ in range(ACCOUNT_LIMIT - 1):
        assert (await login(client, owner.email, WRONG, address=typist)).status_code == 401
    assert (await login(client, owner.email, address=typist)).status_code == 200
    for _ in range(ACCOUNT_LIMIT):
        assert (await login(client, owner.email, WRONG, address=typist)).status_code == 401
    assert (await login(client, owner.email, WRONG, address=typist)).status_code == 429


async def test_failures_slide_out_of_the_window_one_by_one(client, owner, clock):
    start, guesser = clock.now, new_address()
    for i in range(ACCOUNT_LIMIT):
        clock.now = start + i * 60
        assert (await login(client, owner.email, WRONG, address=guesser)).status_code == 401
    assert (await login(client, owner.email, WRONG, address=guesser)).status_code == 429
    clock.now = start + LOGIN_WINDOW_SECONDS + 1  # only the first failure has aged out
    assert (await login(client, owner.email, WRONG, address=guesser)).status_code == 401
    assert (await login(client, owner.email, WRONG, address=guesser)).status_code == 429


async def test_unknown_emails_are_throttled_the_same_way(client, clock):
    email, guesser = f"ghost.{RUN}@example.com", new_address()
    statuses = [(await login(client, email, WRONG, address=guesser)).status_code
                for _ in range(ACCOUNT_LIMIT + 1)]
    assert statuses == [401] * ACCOUNT_LIMIT + [429]


async def test_client_is_throttled_across_accounts(client, owner, clock):
    # Each guess from another address of one IPv6 /64: to the throttle, one client.
    block = new_address().rsplit("::", 1)[0]
    for i in range(CLIENT_LIMIT):
        address = f"{block}:{i + 1:x}::{i + 1:x}"
        response = await login(client, f"guess{i}.{RUN}@example.com", WRONG, address=address)
        assert response.status_code == 401
    assert (await login(client, owner.email, address=f"{block}::abcd")).status_code == 429
    # Another client is not affected, nor is the account itself.
    assert (await login(client, owner.email, address=new_address())).status_code == 200


def test_a_client_is_an_ipv4_address_or_an_ipv6_slash_64():
    from app.accounts.throttle import client_name

    assert client_name("2001:db8:1:2::5") == client_name("2001:db8:1:2:ffff::9")
    assert client_name("2001:db8:1:2::5") != client_name("2001:db8:1:3::5")
    assert client_name("::ffff:192.0.2.7") == client_name("192.0.2.7") == "192.0.2.7"
    assert client_name("192.0.2.7") != client_name("192.0.2.8")


async def test_concurrent_guesses_cannot_slip_past_the_limit(app, owner, clock):
    guesser = new_address()
    responses = await asyncio.gather(*[
        login(app.test_client(), owner.email, WRONG, address=guesser)
        for _ in range(2 * ACCOUNT_LIMIT)
    ])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * ACCOUNT_LIMIT + [429] * ACCOUNT_LIMIT


async def test_throttle_keys_hold_neither_email_nor_address(client, owner, redis, keys, clock):
    address = new_address()
    for _ in range(2):
        await login(client, owner.email, WRONG, address=address)
    found = [key async for key in redis.scan_iter(match=keys.prefix + "login:*")]
    assert found
    for key in found:
        assert address.encode() not in key and owner.email.encode() not in key.lower()
        for member in await redis.zrange(key, 0, -1):
            assert address.encode() not in member and owner.email.encode() not in member


# -- same answer, similar time; nothing in clear ----------------------------------------------


async def test_unknown_email_and_wrong_password_take_similar_time(client, owner, clock):
    async def timed(email: str) -> float:
        clock.now += LOGIN_WINDOW_SECONDS + 1  # a fresh window: timing, not throttling
        started = time.perf_counter()
        response = await login(client, email, WRONG)
        assert response.status_code == 401
        return time.perf_counter() - started

    await timed(owner.email)  # warm up
    unknown, known = [], []
    for i in range(7):
        unknown.append(await timed(f"nobody{i}.{RUN}@example.com"))
        known.append(await timed(owner.email))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (unknown, known)


async def test_passwords_are_stored_hashed_and_never_logged(app, client, pool, caplog):
    secret = f"hunter2-{RUN}-sesame"
    address = new_address()
    caplog.set_level(logging.DEBUG)
    user = await create_user(pool, f"careful.{RUN}@example.com", secret)
    assert (await login(client, user.email, secret, address=address)).status_code == 200
    assert (await login(client, user.email, secret + "x", address=address)).status_code == 401
    token = await login_form(client)
    await post_form(client, {"email": user.email, "password": secret, "csrf_token": token},
                    address=address)
    await post_form(client, {"email": user.email, "password": secret}, address=address)

    row = await pool.fetchrow("SELECT * FROM users WHERE id = $1", user.id)
    assert row["password_hash"].startswith("$argon2id$")
    assert secret not in str(dict(row))
    assert secret not in caplog.text and address not in caplog.text



# -- where a login leads -------------------------------------------------------------------


async def test_a_page_sends_people_to_log_in_and_back(settings, database, redis, owner):
    from tests.support.probes import PROBE_PAGE, add_probes

    app = add_probes(create_app(settings))
    async with app.test_app():
        client = app.test_client()
        response = await client.get(PROBE_PAGE)
        assert response.status_code == 303
        assert response.headers["Location"] == "/login?next=%2Fprobe-page"
        page = await client.get(response.headers["Location"])
        assert 'name="next" value="/probe-page"' in (await page.get_data()).decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', (await page.get_data()).decode())
        response = await post_form(client, {"email": owner.email, "password": PASSWORD,
                                            "csrf_token": token.group(1), "next": "/probe-page"})
        assert response.headers["Location"] == "/probe-page"
        assert (await client.get(PROBE_PAGE)).status_code == 200


@pytest.mark.parametrize(
    ("target", "lands"),
    [
        ("/dashboard/7?range=week", "/dashboard/7?range=week"),
        ("//evil.example/x", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("https://evil.example/", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
        ("/\tevil", "/dashboard"),
        ("", "/dashboard"),
    ],
)
async def test_form_login_goes_back_only_to_a_page_of_ours(client, owner, target, lands):
    page = await client.get("/login", query_string={"next": target})
    html = (await page.get_data()).decode()
    assert "evil" not in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    response = await post_form(client, {"email": owner.email, "password": PASSWORD,
                                        "csrf_token": token, "next": target})
    assert response.status_code == 303
    assert response.headers["Location"] == lands
