"""Forged, expired, revoked and other-tenant credentials on every protected route, REST and
websocket, in this process and in a second real `web` process."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
from quart.testing import WebsocketResponseError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from app.accounts.sessions import end_session, start_session
from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token, list_tokens, revoke_token, verify_token
from app.factory import create_app
from tests.support.http import AUTH_COOKIE, bearer, cookie_from, login
from tests.support.probes import add_probes
from tests.support.routes import OWNER_ONLY, PUBLIC, is_api, sample_path
from tests.support.servers import free_port, run_cli, web_server
from tests.support.settings import RUN


@dataclass(frozen=True)
class Case:
    name: str
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = ""      # "token" or "session" when the credentials are good for some tenant
    covers: bool = False  # good for the route's tenant (A)


@pytest.fixture(scope="module")
async def probe_app(settings, database, redis):
    app = add_probes(create_app(settings))
    async with app.test_app():
        yield app


def auth_cookie(app, session_id: str, secret: str | None = None) -> str:
    """A session cookie exactly as quart-auth signs it (with `secret` to forge one)."""
    extension = app.extensions["QUART_AUTH"][0]
    serializer = extension.serializer_class(secret or app.secret_key, extension.salt)
    return serializer.dumps(session_id)


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{AUTH_COOKIE}={value}"}


@pytest.fixture(scope="module")
async def world(probe_app, pool):
    """Tenant A (the routes' tenant) and B, their owners and tokens, and every credential."""
    from app.accounts.users import add_membership, create_user

    a = await create_tenant(pool, "Tenant A")
    b = await create_tenant(pool, "Tenant B")
    password = "a long enough password"
    owners = {}
    for tenant in (a, b):
        user = await create_user(pool, f"owner-{tenant.id}.{RUN}@example.com", password)
        await add_membership(pool, user.id, tenant.id)
        owners[tenant.id] = user
    sessions = {}
    for tenant in (a, b):
        # A client of its own each: a login ends the session its browser held before.
        response = await login(probe_app.test_client(), owners[tenant.id].email, password)
        assert response.status_code == 200
        sessions[tenant.id] = cookie_from(response)

    now = dt.datetime.now(dt.UTC)
    _, token_a = await create_token(pool, a.id, "a")
    _, token_b = await create_token(pool, b.id, "b")
    _, expired = await create_token(pool, a.id, "expired", expires_at=now - dt.timedelta(seconds=1))
    revoked_record, revoked = await create_token(pool, a.id, "revoked")
    await revoke_token(pool, revoked_record.id)
    ended = await start_session(pool, owners[a.id].id, now)
    await end_session(pool, ended)
    # Last: starting a session clears the user's expired ones.
    old_session = await start_session(pool, owners[a.id].id, now - dt.timedelta(days=15))

    cases = [
        Case("no credentials"),
        Case("forged bearer", bearer("lat_" + secrets.token_urlsafe(32))),
        Case("empty bearer", {"Authorization": "Bearer "}),
        Case("basic auth", {"Authorization": "Basic b3duZXI6cGFzc3dvcmQ="}),
        Case("token in the wrong scheme", {"Authorization": f"Token {token_a}"}),
        Case("expired bearer", bearer(expired)),
        Case("revoked bearer", bearer(revoked)),
        Case("other tenant's bearer", bearer(token_b), kind="token"),
        Case("bearer", bearer(token_a), kind="token", covers=True),
        Case("garbage cookie", cookie("not-a-session")),
        Case("cookie signed with another secret",
             cookie(auth_cookie(probe_app, old_session, secret="guessed-secret"))),
        Case("signed cookie of no session",
             cookie(auth_cookie(probe_app, secrets.token_urlsafe(32)))),
        Case("expired session", cookie(auth_cookie(probe_app, old_session))),
        Case("logged-out session", cookie(auth_cookie(probe_app, ended))),
        Case("other tenant's session", cookie(sessions[b.id]), kind="session"),
        Case("session", cookie(sessions[a.id]), kind="session", covers=True),
        Case("bad bearer beside a good session",
             {**bearer("lat_forged"), **cookie(sessions[a.id])}),
    ]
    return {"a": a, "b": b, "owners": owners, "cases": {c.name: c for c in cases},
            "token_a": token_a, "session_a": sessions[a.id], "password": password}


CASE_NAMES = [
    "no credentials", "forged bearer", "empty bearer", "basic auth", "token in the wrong scheme",
    "expired bearer", "revoked bearer", "other tenant's bearer", "bearer", "garbage cookie",
    "cookie signed with another secret", "signed cookie of no session", "expired session",
    "logged-out session", "other tenant's session", "session", "bad bearer beside a good session",
]


def protected_rules(app):
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule not in PUBLIC]
    # The probes make sure a REST route, a websocket and a page are always in the table.
    assert any(rule.websocket for rule in rules) and any(is_api(r.rule) for r in rules)
    assert any(is_page(rule) for rule in rules)
    return rules


def expected(case: Case, rule) -> str:
    # Pages are for people: a token opens none of them.
    good = case.kind == "session" if is_page(rule) else bool(case.kind)
    if not good:
        return "refused"
    if "<int:tenant_id>" in rule.rule and not case.covers:
        return "forbidden"
    if rule.rule in OWNER_ONLY and case.kind != "session":
        return "forbidden"  # a token reads numbers; it manages nothing
    return "ok"


def is_page(rule) -> bool:
    return not (rule.websocket or is_api(rule.rule))


async def answer(client, rule, path: str, headers: dict[str, str]) -> str:
    """ok, refused (401, or a page's redirect to /login) or forbidden (403)."""
    if rule.websocket:
        async with client.websocket(path, headers=headers) as socket:
            try:
                await asyncio.wait_for(socket.receive(), 2)
            except WebsocketResponseError as error:
                status = error.response.status_code
            else:
                return "ok"
    else:
        response = await client.get(path, headers=headers)
        status = response.status_code
        if status in (401, 403):
            document = await response.get_json()
            assert document["success"] is False and document["error"]
        location = urlsplit(response.headers.get("Location", "")).path
        if is_page(rule) and status in (302, 303) and location == "/login":
            return "refused"
    return {200: "ok", 401: "refused", 403: "forbidden"}.get(status, f"answered {status}")


@pytest.mark.parametrize("name", CASE_NAMES)
async def test_credentials_on_every_protected_route(probe_app, world, name):
    case = world["cases"][name]
    client = probe_app.test_client(use_cookies=False)
    outcomes = {}
    for rule in protected_rules(probe_app):
        if "GET" not in rule.methods and not rule.websocket:
            continue
        path = sample_path(rule.rule, world["a"].id)
        outcomes[rule.rule] = (await answer(client, rule, path, case.headers),
                               expected(case, rule))
    assert all(got == want for got, want in outcomes.values()), outcomes


async def test_websocket_session_from_another_site_is_refused(probe_app, world):
    client = probe_app.test_client(use_cookies=False)
    path = f"/api/analytics/{world['a'].id}/probe/live"
    session = cookie(world["session_a"])
    for origin, status in [("https://evil.example", 401), ("http://localhost", 200), (None, 200)]:
        headers = {**session, **({"Origin": origin} if origin else {})}
        async with client.websocket(path, headers=headers) as socket:
            try:
                await asyncio.wait_for(socket.receive_json(), 2)
                got = 200
            except WebsocketResponseError as error:
                got = error.response.status_code
        assert got == status, origin


async def test_membership_changes_apply_to_live_sessions(probe_app, world, pool):
    from app.accounts.users import add_membership

    client = probe_app.test_client(use_cookies=False)
    session = cookie(world["session_a"])
    extra = await create_tenant(pool, "Added later")
    path = f"/api/analytics/{extra.id}/probe"
    assert (await client.get(path, headers=session)).status_code == 403
    await add_membership(pool, world["owners"][world["a"].id].id, extra.id)
    assert (await client.get(path, headers=session)).status_code == 200


async def test_tokens_are_stored_only_hashed_and_last_use_is_kept_to_a_minute(pool, tenant):
    token, plaintext = await create_token(pool, tenant.id, "reporting")
    row = await pool.fetchrow("SELECT * FROM api_tokens WHERE id = $1", token.id)
    assert plaintext.encode() not in str(dict(row)).encode()
    assert plaintext[4:] not in str(dict(row))
    import hashlib

    assert row["token_hash"] == hashlib.sha256(plaintext.encode()).digest()
    assert row["last_used_at"] is None

    t0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    assert (await verify_token(pool, plaintext, t0)).id == token.id
    [listed] = await list_tokens(pool, tenant.id)
    assert listed.last_used_at == t0 and listed.label == "reporting" and listed.created_at
    await verify_token(pool, plaintext, t0 + dt.timedelta(seconds=59))
    [listed] = await list_tokens(pool, tenant.id)
    assert listed.last_used_at == t0  # no write within the minute
    await verify_token(pool, plaintext, t0 + dt.timedelta(seconds=61))
    [listed] = await list_tokens(pool, tenant.id)
    assert listed.last_used_at == t0 + dt.timedelta(seconds=61)


async def test_a_request_with_a_token_records_its_use(probe_app, pool, tenant):
    token, plaintext = await create_token(pool, tenant.id)
    client = probe_app.test_client(use_cookies=False)
    path = f"/api/analytics/{tenant.id}/probe"
    response = await client.get(path, headers=bearer(plaintext))
    assert response.status_code == 200
    [listed] = await list_tokens(pool, token.tenant_id)
    assert listed.last_used_at is not None


# -- a second, real web process ------------------------------------------------------------


@pytest.fixture(scope="module")
async def web_process(settings, database):
    """`analytics serve`'s app (plus the probes) under uvicorn in its own process."""
    async with web_server(settings, "tests.support.probes:app") as web:
        yield web.http


async def live_status(base: str, tenant_id: int, headers: dict[str, str]) -> int:
    url = base.replace("http", "ws", 1) + f"/api/analytics/{tenant_id}/probe/live"
    try:
        async with connect(url, additional_headers=headers, open_timeout=5) as socket:
            await asyncio.wait_for(socket.recv(), 5)
            return 200
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_token_revoked_by_the_cli_stops_at_once_in_another_process(
        web_process, settings, pool, tenant):
    token, plaintext = await create_token(pool, tenant.id, "other process")
    headers = bearer(plaintext)
    urls = [f"{web_process}/api/analytics/{tenant.id}/probe",
            f"{web_process}/api/analytics/{tenant.id}/today"]
    async with httpx.AsyncClient(timeout=5) as http:
        for url in urls:
            assert (await http.get(url, headers=headers)).status_code == 200, url
        assert await live_status(web_process, tenant.id, headers) == 200

        revoked = run_cli(settings, "token", "revoke", str(token.id), "--json")
        assert revoked.returncode == 0, revoked.stderr

        for url in urls:
            refused = await http.get(url, headers=headers)
            assert refused.status_code == 401, url
            assert refused.json()["success"] is False
        assert await live_status(web_process, tenant.id, headers) == 401


async def test_logout_here_ends_the_session_in_another_process(
        web_process, app, owner, tenant):
    client = app.test_client()
    response = await login(client, owner.email)
    assert response.status_code == 200
    session = cookie(cookie_from(response))
    url = f"{web_process}/api/analytics/{tenant.id}/probe"
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(url, headers=session)).status_code == 200
        assert (await client.post("/logout", json={})).status_code == 200
        assert (await http.get(url, headers=session)).status_code == 401
        assert await live_status(web_process, tenant.id, session) == 401


async def test_credentials_cannot_be_checked_without_postgres(settings, redis, world):
    """503, not 500 and not a pass: the answer when Postgres is down."""
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = add_probes(create_app(dataclasses.replace(settings, database_url=closed)))
    async with app.test_app():
        client = app.test_client(use_cookies=False)
        path = f"/api/analytics/{world['a'].id}/probe"
        for headers in (bearer(world["token_a"]), cookie(world["session_a"])):
            response = await client.get(path, headers=headers)
            assert response.status_code == 503
            assert (await response.get_json())["success"] is False
        response = await client.post(
            "/login", json={"email": "someone@example.com", "password": "whatever it is"},
            scope_base={"client": ("192.0.2.200", 1)},
        )
        assert response.status_code == 503
