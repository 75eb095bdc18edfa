"""The live socket served ahead of Quart (app/http/live_fastpath.py) on a real uvicorn with
`analytics serve`'s protocol (app/http/ws_protocol.py): what it keeps, what it reads."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import gc
import os
import socket

import orjson
import pytest
import websockets
from websockets.asyncio.client import connect

from app.accounts.tokens import create_token, revoke_token
from app.factory import create_app
from app.http.ws_protocol import LeanWebSocketProtocol, _Mailbox
from tests.support.http import bearer, track
from tests.support.servers import in_process_server


@contextlib.asynccontextmanager
async def served(settings, **overrides):
    """The product app with some settings changed, on uvicorn in this event loop: (app, port)."""
    app = create_app(dataclasses.replace(settings, **overrides))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    async with in_process_server(app, listener):
        yield app, listener.getsockname()[1]


async def frame(ws, timeout: float = 5.0) -> dict:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_sockets_are_served_without_the_quart_route(app, client, tenant, auth_headers,
                                                          monkeypatch):
    def quart_route(tenant_id: int) -> None:
        raise AssertionError("the Quart route served a live socket")

    monkeypatch.setitem(app.view_functions, "live.live", quart_route)
    path = f"/api/analytics/{tenant.id}/live"
    async with client.websocket(path, headers=auth_headers) as ws:
        assert orjson.loads(await asyncio.wait_for(ws.receive(), 3))["type"] == "snapshot"


async def test_client_frames_are_read_and_dropped(settings, database, pool, tenant):
    """uvicorn stops reading a connection until the app takes the frame it queued: a socket
    that left client frames unread would not even answer a ping."""
    _, token = await create_token(pool, tenant.id)
    # Bounded as a whole: a socket that never reads also never hears its client leave, and
    # would hold the server's shutdown.
    async with asyncio.timeout(30), served(settings) as (app, port):
        url = f"ws://127.0.0.1:{port}/api/analytics/{tenant.id}/live"
        async with connect(url, additional_headers=bearer(token)) as ws:
            assert (await frame(ws))["type"] == "snapshot"
            for n in range(200):
                await ws.send(f"noise {n} " + "x" * 1000)
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)
            assert (await track(app.test_client(), tenant.id, "qr_scan")).status_code == 200
            while (update := await frame(ws))["type"] != "update":
                pass
            assert update["data"]["qr_scans"] == 1


async def test_a_revoked_token_closes_its_socket_on_a_real_server(settings, database, pool,
                                                                  tenant):
    record, token = await create_token(pool, tenant.id)
    async with served(settings, live_reauth_interval=0.2) as (_, port):
        url = f"ws://127.0.0.1:{port}/api/analytics/{tenant.id}/live"
        async with connect(url, additional_headers=bearer(token)) as ws:
            assert (await frame(ws))["type"] == "snapshot"
            await asyncio.sleep(0.5)  # rechecked, still valid: the socket stays
            await revoke_token(pool, record.id)
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await frame(ws)
        assert ws.close_code == 4401


async def test_an_open_socket_keeps_nothing_of_its_handshake(settings, database, pool, tenant):
    from websockets.http11 import Request

    _, token = await create_token(pool, tenant.id)
    async with served(settings) as (_, port):
        # A bare client, so that the only handshake objects in this process are the server's.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /api/analytics/{tenant.id}/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        try:
            assert (await reader.readline()).startswith(b"HTTP/1.1 101")
            await asyncio.wait_for(reader.readuntil(b"snapshot"), 5)
            gc.collect()
            [protocol] = [o for o in gc.get_objects() if isinstance(o, LeanWebSocketProtocol)]
            assert protocol.request is None and protocol.response is None
            assert protocol.scope["headers"] == []
            assert not [o for o in gc.get_objects() if isinstance(o, Request)]
        finally:
            writer.close()


async def test_the_mailbox_hands_items_over_in_order_and_survives_a_cancelled_reader():
    mailbox = _Mailbox()
    cancelled = asyncio.create_task(mailbox.get())
    waiting = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    mailbox.put_nowait("first")
    mailbox.put_nowait("second")
    assert await asyncio.wait_for(waiting, 1) == "first"
    assert await mailbox.get() == "second"
    assert mailbox.empty()
