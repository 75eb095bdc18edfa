"""The `analytics` command line, run as operators run it: a real subprocess."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import pytest

from tests.support.http import bearer, track
from tests.support.polling import eventually
from tests.support.servers import free_port, run_cli, start_process, wait_for_port
from tests.support.settings import drop_database


def ok_json(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_migrate_is_safe_to_run_again_and_at_once(settings, database):
    first = ok_json(await asyncio.to_thread(run_cli, settings, "migrate", "--json"))
    assert first == {"applied": []}
    results = await asyncio.gather(*[asyncio.to_thread(run_cli, settings, "migrate", "--json")
                                     for _ in range(3)])
    assert all(ok_json(r) == {"applied": []} for r in results)


async def test_migrate_creates_a_fresh_database_concurrently(settings):
    name = f"{settings.database_url.rsplit('/', 1)[1]}_fresh"
    dsn = settings.database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        results = await asyncio.gather(*[
            asyncio.to_thread(run_cli, settings, "migrate", "--json", DATABASE_URL=dsn)
            for _ in range(2)
        ])
        from app.ops.migrate import migrations

        every = [name for _, name, _ in migrations()]
        applied = [ok_json(r)["applied"] for r in results]
        assert sorted(applied, key=len) == [[], every]
    finally:
        await drop_database(dsn)


async def test_tenant_and_token_lifecycle(settings, database, app, client):
    tenant = ok_json(await asyncio.to_thread(
        run_cli, settings, "tenant", "create", "Cafe CLI", "--timezone", "America/Bogota",
        "--json"))
    assert set(tenant) == {"id", "name", "timezone"}
    assert tenant["name"] == "Cafe CLI" and tenant["timezone"] == "America/Bogota"

    token = ok_json(await asyncio.to_thread(
        run_cli, settings, "token", "create", "--tenant", str(tenant["id"]), "--label", "zapier",
        "--json"))
    assert token["token"].startswith("lat_") and isinstance(token["id"], int)
    headers = bearer(token["token"])
    today = f"/api/analytics/{tenant['id']}/today"
    # Twice: the second read leaves the token in the app's cache, which the revocation by
    # another process (this command) must reach.
    for _ in range(2):
        assert (await client.get(today, headers=headers)).status_code == 200

    ok_json(await asyncio.to_thread(run_cli, settings, "token", "revoke", str(token["id"]),
                                    "--json"))
    assert (await client.get(today, headers=headers)).status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tenant", "create", "X", "--timezone", "Mars/Olympus"], "unknown timezone"),
        (["tenant", "create", ""], "1 to 200 characters"),
        (["token", "create", "--tenant", "999999999"], "does not exist"),
        (["token", "revoke", "999999999"], "does not exist"),
    ],
)
async def test_failures_exit_nonzero_with_one_line(settings, database, args, message):
    result = await asyncio.to_thread(run_cli, settings, *args, "--json")
    assert result.returncode != 0
    assert result.stdout == ""
    assert message in result.stderr and result.stderr.count("\n") == 1


async def test_postgres_unreachable_is_one_clear_line(settings):
    result = await asyncio.to_thread(run_cli, settings, "tenant", "list", "--json",
                                     DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")
    assert result.returncode != 0
    assert "cannot reach Postgres" in result.stderr and result.stderr.count("\n") == 1


async def test_flush_command_makes_events_visible_at_once(settings, app, client, tenant,
                                                          auth_headers):

    for kind in ("qr_scan", "qr_scan", "click_whatsapp"):
        assert (await track(client, tenant.id, kind)).status_code == 200
    result = ok_json(await asyncio.to_thread(run_cli, settings, "flush", "--json"))
    assert set(result) == {"events", "rollups"}
    assert result["events"] >= 3 and result["rollups"] >= 1
    response = await client.get(f"/api/analytics/{tenant.id}/today", headers=auth_headers)
    today = await response.get_json()
    assert today["qr_scans"] == 2 and today["whatsapp_clicks"] == 1


async def test_scheduler_process_flushes_within_the_interval(settings, app, client, tenant,
                                                              auth_headers):
    scheduler = start_process(settings, "scheduler", FLUSH_INTERVAL_SECONDS=1)
    try:
        assert (await track(client, tenant.id, "product_click")).status_code == 200

        async def flushed() -> bool:
            response = await client.get(f"/api/analytics/{tenant.id}/today", headers=auth_headers)
            return (await response.get_json())["products_viewed"] == 1

        await eventually(flushed, 10, interval=0.2, what="the event counted in /today")
    finally:
        scheduler.send_signal(signal.SIGTERM)
        output, _ = scheduler.communicate(timeout=20)
    assert scheduler.returncode == 0, output
    assert "scheduler stopped" in output


async def test_serve_answers_the_readme_curl(settings, database, tenant):
    port = free_port()
    web = start_process(settings, "serve", PORT=port, WEB_CONCURRENCY=1)
    try:
        await asyncio.to_thread(wait_for_port, port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            response = await http.post(
                "/api/analytics/track", json={"tenant_id": tenant.id, "event_type": "pageview"},
                headers={"User-Agent": "Mozilla/5.0 (demo)", "X-Forwarded-For": "198.51.100.9"})
            assert response.status_code == 200 and response.json() == {"success": True}
            assert (await http.get("/readyz")).json()["success"] is True
            spec = (await http.get("/openapi.json")).json()
            assert "/api/analytics/track" in spec["paths"]
    finally:
        web.send_signal(signal.SIGTERM)
        output, _ = web.communicate(timeout=20)
    assert "198.51.100.9" not in output and "127.0.0.1" not in output


async def test_demo_seeds_a_week_and_prints_how_to_log_in(settings, database, app, client):
    first = ok_json(await asyncio.to_thread(run_cli, settings, "demo", "--json"))
    again = ok_json(await asyncio.to_thread(run_cli, settings, "demo", "--json"))
    assert again["tenant_id"] == first["tenant_id"] and again["created"] is False
    login = await client.post("/login",
                              json={"email": again["email"], "password": again["password"]})
    assert login.status_code == 200, await login.get_data()
    data = (await (await client.get(f"/api/analytics/{first['tenant_id']}")).get_json())["data"]
    assert first["events"] > 100
    assert data["visitors_week"] > 0 and sum(d["visitors"] for d in data["last_7_days"]) > 0
    headers = bearer(again["token"])
    today = await client.get(f"/api/analytics/{first['tenant_id']}/today", headers=headers)
    assert today.status_code == 200
