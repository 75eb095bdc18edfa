"""Live sockets on real `web` processes: fan-out through Redis, denials, shutdown."""

from __future__ import annotations

import asyncio
import signal

import httpx
import orjson
import pytest
import websockets
from websockets.asyncio.client import connect

from app.accounts.tokens import create_token
from tests.support.http import bearer
from tests.support.servers import free_port, start_process, wait_ready, web_server

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}


@pytest.fixture(scope="module")
async def two_servers(settings, database):
    async with web_server(settings) as first, web_server(settings) as second:
        yield first, second


async def frames(ws, timeout: float = 5.0):
    async with asyncio.timeout(timeout):
        while True:
            yield orjson.loads(await ws.recv())


async def test_event_accepted_by_one_process_reaches_a_socket_on_the_other(
        two_servers, pool, tenant):
    held_by, accepted_by = two_servers
    _, token = await create_token(pool, tenant.id)
    headers = bearer(token)
    url = f"{held_by.ws}/api/analytics/{tenant.id}/live"
    async with connect(url, additional_headers=headers) as ws:
        first = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["type"] == "snapshot"
        assert first["data"]["qr_scans"] == 0
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{accepted_by.http}/api/analytics/track", headers=BROWSER,
                json={"tenant_id": tenant.id, "event_type": "qr_scan"},
            )
        assert response.status_code == 200
        async for frame in frames(ws):
            if frame["type"] == "update":
                break
    assert frame["data"]["qr_scans"] == 1
    assert frame["data"]["visitors_today"] == 1


@pytest.mark.parametrize(("credentials", "status"),
                         [(None, 401), ("lat_forged", 401), ("other", 403)])
async def test_the_server_denies_the_upgrade_with_http_status(
        two_servers, pool, tenant, credentials, status):
    server, _ = two_servers
    if credentials == "other":
        from app.accounts.tenants import create_tenant

        other = await create_tenant(pool, "Not yours", "UTC")
        credentials = (await create_token(pool, other.id))[1]
    headers = bearer(credentials) if credentials else {}
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(f"{server.ws}/api/analytics/{tenant.id}/live",
                           additional_headers=headers):
            pass
    response = refused.value.response
    assert response.status_code == status
    assert orjson.loads(response.body)["success"] is False


async def test_sigterm_closes_sockets_with_1001(settings, database, pool, tenant):
    _, token = await create_token(pool, tenant.id)
    headers = bearer(token)
    async with web_server(settings) as server:
        url = f"{server.ws}/api/analytics/{tenant.id}/live"
        sockets = [await connect(url, additional_headers=headers) for _ in range(20)]
        for ws in sockets:
            assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "snapshot"
        server.process.send_signal(signal.SIGTERM)
        codes = []
        for ws in sockets:
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
            codes.append(ws.close_code)
        assert codes == [1001] * len(sockets)
        # uvicorn re-raises the signal it handled once its graceful shutdown is done.
        assert await asyncio.to_thread(server.process.wait, 15) in (0, -signal.SIGTERM)


async def test_analytics_serve_declines_per_message_deflate(settings, database, pool, tenant):
    # Browsers offer it on every socket; accepted, it would hold a zlib context per socket,
    # more memory than the rest of an idle dashboard, to shrink frames of a few hundred bytes.
    _, token = await create_token(pool, tenant.id)
    port = free_port()
    web = start_process(settings, "serve", PORT=port, WEB_CONCURRENCY=1)
    try:
        # Ready, and this process: a port that another took meanwhile fails here, clearly.
        await wait_ready(f"http://127.0.0.1:{port}", web)
        url = f"ws://127.0.0.1:{port}/api/analytics/{tenant.id}/live"
        async with connect(url, additional_headers=bearer(token), compression="deflate") as ws:
            assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
            assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "snapshot"
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
    finally:
        web.send_signal(signal.SIGTERM)
        print(web.communicate(timeout=20)[0])  # shown when the test fails
