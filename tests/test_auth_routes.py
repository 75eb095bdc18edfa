"""Every route, HTTP and websocket, is on the public allowlist or refuses anonymous access.

A route added without authorization fails `test_every_route_is_public_or_refuses_anonymous`.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import pytest
from quart import Quart, websocket
from quart.testing import WebsocketResponseError

from app.factory import create_app
from tests.probes import add_probes

# The whole public surface. Everything else needs a token or a session.
PUBLIC = frozenset({
    "/healthz",                 # liveness probe
    "/readyz",                  # readiness probe: whether Redis and Postgres answer, events waiting
    "/openapi.json",            # API description and its viewer
    "/docs",
    "/docs/assets/<name>",      # the viewer's script and stylesheet
    "/static/<path:filename>",  # the tracker's and the pages' assets
    "/login",                   # the way in
    "/logout",                  # only ever ends the caller's own session
    "/api/analytics/track",     # landing pages send events without credentials
    "/t.js",                    # the tracker script
    "/demo/<int:tenant_id>",    # a sample landing page, no data in it
})
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def sample_path(rule: str, tenant_id: int) -> str:
    """The rule with its arguments filled in; ints get a real tenant, so a 404 cannot pass
    for a refusal."""
    return _ARGUMENT.sub(lambda m: str(tenant_id) if m.group(1) == "int" else "x", rule)


def is_api(rule: str) -> bool:
    return rule.startswith("/api/")


async def _refuses_http(client, method: str, path: str, api: bool) -> str | None:
    # JSON bodies pass the CSRF check, so what answers is the route's own authorization.
    kwargs = {"json": {}} if method in UNSAFE_METHODS else {}
    response = await client.open(path, method=method, **kwargs)
    document = await response.get_json(silent=True) if response.is_json else None
    json_401 = response.status_code == 401 and (document or {}).get("success") is False
    if api:
        return None if json_401 else f"{method} answered {response.status_code}"
    to_login = (response.status_code in (302, 303, 307)
                and urlsplit(response.headers.get("Location", "")).path == "/login")
    return None if to_login or json_401 else f"{method} answered {response.status_code}"


async def _refuses_websocket(client, path: str) -> str | None:
    async with client.websocket(path) as socket:
        try:
            data = await asyncio.wait_for(socket.receive(), 2)
        except WebsocketResponseError as error:
            status = error.response.status_code
            return None if status == 401 else f"refused with {status} instead of 401"
        except TimeoutError:
            return "accepted an anonymous connection" if socket.accepted else "no answer"
        except Exception as error:  # closed without a denial response
            return f"closed with {error!r} instead of answering 401"
        return f"sent {data!r} to an anonymous client"


async def anonymous_leaks(app: Quart, tenant_id: int) -> dict[str, str]:
    """Route -> what it did for an anonymous client, for each non-public route that did not
    refuse (401 JSON for the API and websockets, a redirect to /login for pages)."""
    client = app.test_client(use_cookies=False)
    leaks = {}
    for rule in app.url_map.iter_rules():
        if rule.rule in PUBLIC:
            continue
        path = sample_path(rule.rule, tenant_id)
        if rule.websocket:
            problem = await _refuses_websocket(client, path)
            if problem:
                leaks[f"WS {rule.rule}"] = problem
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            problem = await _refuses_http(client, method, path, is_api(rule.rule))
            if problem:
                leaks[f"{method} {rule.rule}"] = problem
    return leaks


async def test_every_route_is_public_or_refuses_anonymous(app, tenant):
    assert await anonymous_leaks(app, tenant.id) == {}


def test_allowlist_names_only_routes_or_planned_ones(app):
    # A stale entry could later let an unprotected route through under its name.
    planned = {"/t.js", "/demo/<int:tenant_id>"}
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert PUBLIC - planned <= routes


@pytest.fixture(scope="module")
async def leaky_app(settings, database, redis):
    """The product app plus protected probes and three routes that forgot authorization."""
    app = add_probes(create_app(settings))

    @app.get("/api/analytics/<int:tenant_id>/leak")
    async def leak(tenant_id: int) -> dict:
        return {"success": True, "visitors_today": 3}

    @app.get("/reports")
    async def reports() -> str:
        return "<p>everyone's numbers</p>"

    @app.websocket("/api/analytics/<int:tenant_id>/leak/live")
    async def leak_live(tenant_id: int) -> None:
        await websocket.accept()
        await websocket.send_json({"type": "snapshot"})

    async with app.test_app():
        yield app


async def test_the_check_catches_routes_without_authorization(leaky_app, tenant):
    leaks = await anonymous_leaks(leaky_app, tenant.id)
    assert set(leaks) == {
        "GET /api/analytics/<int:tenant_id>/leak",
        "GET /reports",
        "WS /api/analytics/<int:tenant_id>/leak/live",
    }, leaks


def test_sample_paths_fill_every_argument():
    assert sample_path("/api/analytics/<int:tenant_id>/today", 7) == "/api/analytics/7/today"
    assert sample_path("/static/<path:filename>", 7) == "/static/x"
    assert sample_path("/a/<name>/<int(min=1):n>", 7) == "/a/x/7"
