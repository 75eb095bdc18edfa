"""PUBLIC_URL: the one address of every absolute URL we print or encode (the dashboard's
snippet and QR code, `analytics demo`), never the request's Host header; required in
production, where the Host header is whatever the client sends."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import signal
import subprocess
import xml.etree.ElementTree as ElementTree

import pytest

from app.routes.pages import render_qr
from app.settings import ConfigError, Settings
from tests.support.apps import serving_app
from tests.support.http import AUTH_COOKIE, cookie_from, login
from tests.support.servers import ANALYTICS, ROOT, env_for, free_port, run_cli
from tests.support.settings import drop_database

PUBLIC = "https://stats.example"
FORGED = {"Host": "evil.example"}
PRODUCTION = {"ANALYTICS_ENV": "production", "SECRET_KEY": "s" * 32}


@pytest.mark.parametrize(("raw", "stored"), [
    ("https://stats.example", "https://stats.example"),
    ("https://stats.example/", "https://stats.example"),
    ("  https://stats.example:8443  ", "https://stats.example:8443"),
    ("https://[2001:db8::1]:8443/", "https://[2001:db8::1]:8443"),
    ("https://stats.example:443/", "https://stats.example"),
])
def test_public_url_is_kept_as_an_origin(raw, stored):
    assert Settings.from_env({**PRODUCTION, "PUBLIC_URL": raw}).public_url == stored
    assert Settings.from_env({"SECRET_KEY": "x", "PUBLIC_URL": raw}).public_url == stored


def test_a_default_port_is_dropped_as_in_an_origin_header():
    assert Settings.from_env({"SECRET_KEY": "x", "PUBLIC_URL": "http://stats.example:80"}
                             ).public_url == "http://stats.example"


def test_development_without_public_url_uses_the_request_host():
    assert Settings.from_env({"SECRET_KEY": "x"}).public_url == ""


@pytest.mark.parametrize(("env", "message"), [
    ({}, "PUBLIC_URL is required when ANALYTICS_ENV=production"),
    ({"PUBLIC_URL": ""}, "PUBLIC_URL is required"),
    ({"PUBLIC_URL": "   "}, "PUBLIC_URL is required"),
    ({"PUBLIC_URL": "stats.example"}, "absolute http(s) address"),
    ({"PUBLIC_URL": "//stats.example"}, "absolute http(s) address"),
    ({"PUBLIC_URL": "ftp://stats.example"}, "absolute http(s) address"),
    ({"PUBLIC_URL": "https://"}, "absolute http(s) address"),
    ({"PUBLIC_URL": "https://stats.example/?a=1"}, "no query or fragment"),
    ({"PUBLIC_URL": "https://stats.example/?"}, "no query or fragment"),
    ({"PUBLIC_URL": "https://stats.example/#top"}, "no query or fragment"),
    ({"PUBLIC_URL": "https://stats.example/analytics"}, "no path"),
    ({"PUBLIC_URL": "https://user:pw@stats.example"}, "user or password"),
    ({"PUBLIC_URL": "https://stats.example:https"}, "invalid port"),
    ({"PUBLIC_URL": "http://stats.example"}, "must start with https://"),
])
def test_production_refuses_a_missing_or_unusable_public_url(env, message):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**PRODUCTION, **env})
    assert message in str(refused.value)


async def _owner_session(app, owner):
    client = app.test_client()
    assert (await login(client, owner.email)).status_code == 200
    return client


async def test_a_forged_host_header_cannot_change_the_snippet_or_the_qr_code(settings, owner,
                                                                            tenant):
    landing = f"{PUBLIC}/demo/{tenant.id}?src=qr"
    async with serving_app(settings, public_url=PUBLIC) as app:
        session = await _owner_session(app, owner)
        response = await session.get(f"/dashboard/{tenant.id}", headers=FORGED)
        assert response.status_code == 200
        page = html.unescape((await response.get_data()).decode())
        assert f'<script defer src="{PUBLIC}/t.js" data-tenant="{tenant.id}"></script>' in page
        assert "evil.example" not in page

        svg = await session.get(f"/dashboard/{tenant.id}/qr.svg", headers=FORGED)
        assert svg.status_code == 200
        body = await svg.get_data()
        title = ElementTree.fromstring(body).find("{http://www.w3.org/2000/svg}title")
        assert title is not None and title.text == f"QR code: {landing}"
        assert body == render_qr(landing, "svg")  # the modules encode it, not only the title
        png = await session.get(f"/dashboard/{tenant.id}/qr.png", headers=FORGED)
        assert await png.get_data() == render_qr(landing, "png")


async def test_a_forged_host_header_cannot_vouch_for_a_websocket_origin(settings, owner, tenant):
    """A session cookie opens a live socket only for pages of PUBLIC_URL: an Origin that merely
    matches a Host header the client forged is another site."""
    from quart.testing.connections import WebsocketResponseError

    async with serving_app(settings, public_url=PUBLIC) as app:
        response = await login(app.test_client(), owner.email)
        assert response.status_code == 200
        session = {"Cookie": f"{AUTH_COOKIE}={cookie_from(response)}"}
        client = app.test_client(use_cookies=False)
        outcomes = {}
        for origin in ("https://evil.example", PUBLIC, PUBLIC.upper(), "http://stats.example"):
            headers = {**session, **FORGED, "Origin": origin}
            async with client.websocket(f"/api/analytics/{tenant.id}/live",
                                        headers=headers) as socket:
                try:
                    frame = await asyncio.wait_for(socket.receive_json(), 5)
                    outcomes[origin] = frame["type"]
                except WebsocketResponseError as error:
                    outcomes[origin] = error.response.status_code
    assert outcomes == {"https://evil.example": 401, PUBLIC: "snapshot",
                        PUBLIC.upper(): "snapshot", "http://stats.example": 401}


def _production_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PUBLIC_URL"}
    return {**env, **PRODUCTION, **extra}


def _run_to_the_end(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Runs a command that should refuse to start; if it starts anyway, it and every worker it
    forked are killed (its own process group) and the test fails."""
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"{argv} started instead of refusing to") from None
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


@pytest.mark.parametrize("command", [["serve", "--host", "127.0.0.1"], ["scheduler"], ["flush"]])
def test_production_without_public_url_refuses_to_start(settings, command):
    stores = {k: v for k, v in env_for(settings).items() if k in ("DATABASE_URL", "REDIS_URL")}
    done = _run_to_the_end([ANALYTICS, *command], _production_env(
        **stores, PORT=str(free_port()), WEB_CONCURRENCY="1"))
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        "analytics: PUBLIC_URL is required when ANALYTICS_ENV=production: the https address "
        "people reach the service at, like https://analytics.example.com"]


def test_the_asgi_app_refuses_to_load_in_production_without_public_url():
    # What a server that imports `app.asgi:app` directly (uvicorn, systemd) runs into.
    done = _run_to_the_end(
        [os.path.join(os.path.dirname(ANALYTICS), "python"), "-c", "import app.asgi"],
        _production_env())
    assert done.returncode != 0
    assert "PUBLIC_URL is required when ANALYTICS_ENV=production" in done.stderr


async def test_demo_prints_its_urls_at_public_url(settings, database):
    # A database of its own: the demo seeds once per database, and the CLI's demo test
    # expects to be the one that seeds the run's.
    dsn = f"{settings.database_url}_public_url"
    env = {"PUBLIC_URL": PUBLIC, "DATABASE_URL": dsn}
    try:
        assert (await asyncio.to_thread(run_cli, settings, "migrate", **env)).returncode == 0
        data = await asyncio.to_thread(run_cli, settings, "demo", "--json", **env)
        assert data.returncode == 0, data.stderr
        found = json.loads(data.stdout)
        assert found["login"] == f"{PUBLIC}/login"
        assert found["demo_page"] == f"{PUBLIC}/demo/{found['tenant_id']}"

        text = await asyncio.to_thread(run_cli, settings, "demo", **env)
        assert text.returncode == 0, text.stderr
        urls = re.findall(r"https?://\S+", text.stdout)
        assert len(urls) >= 4, text.stdout
        assert all(url.startswith(f"{PUBLIC}/") for url in urls), urls
    finally:
        await drop_database(dsn)
