"""Fan-out under load: many sockets and tenants at once, and a client that never reads."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import secrets
import socket
import time

import orjson
from websockets.asyncio.client import connect

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from app.factory import create_app
from tests.support.http import bearer, new_address, track
from tests.support.polling import eventually
from tests.support.servers import in_process_server

BIG_TENANT_SOCKETS = 500
SMALL_TENANTS = 50
SOCKETS_PER_SMALL_TENANT = 2


async def test_500_sockets_and_50_tenants_each_get_only_their_own(app, client, pool):
    big = await create_tenant(pool, "Busy cafe", "UTC")
    small = [await create_tenant(pool, f"Small {n}", "UTC") for n in range(SMALL_TENANTS)]
    tokens = {t.id: (await create_token(pool, t.id))[1] for t in [big, *small]}
    # /track learns unknown tenants at a throttled rate (20 a second); fifty new ones at once
    # are loaded the way the background refresher would.
    await app.extensions["analytics"].tenants.reload()
    # Half the small tenants get whatsapp clicks, each a different number; the others nothing.
    clicks = {t.id: (n // 2 + 1 if n % 2 == 0 else 0) for n, t in enumerate(small)}
    watched = ([big.id] * BIG_TENANT_SOCKETS
               + [t.id for t in small for _ in range(SOCKETS_PER_SMALL_TENANT)])

    async with contextlib.AsyncExitStack() as stack:
        async def open_socket(tenant_id: int):
            ws = await stack.enter_async_context(client.websocket(
                f"/api/analytics/{tenant_id}/live?events=1",
                headers=bearer(tokens[tenant_id])))
            first = orjson.loads(await asyncio.wait_for(ws.receive(), 10))
            assert first["type"] == "snapshot"
            return ws

        # A TaskGroup, not gather: one failure cancels the rest instead of leaving them open.
        async with asyncio.TaskGroup() as opening:
            opened = [opening.create_task(open_socket(t)) for t in watched]
        sockets = [task.result() for task in opened]
        assert app.extensions["live"].watchers(big.id) == BIG_TENANT_SOCKETS

        received: list[list[dict]] = [[] for _ in sockets]

        async def collect(index: int) -> None:
            while True:
                received[index].append(orjson.loads(await sockets[index].receive()))

        collectors = [asyncio.create_task(collect(i)) for i in range(len(sockets))]
        try:
            def meta(tenant_id: int) -> dict:
                return {"tenant": tenant_id}

            assert (await track(client, big.id, "pageview", meta(big.id))).status_code == 200
            for tenant_id, count in clicks.items():
                for _ in range(count):
                    response = await track(client, tenant_id, "click_whatsapp", meta(tenant_id))
                    assert response.status_code == 200

            def final(index: int) -> dict | None:
                updates = [f["data"] for f in received[index] if f["type"] == "update"]
                return updates[-1] if updates else None

            def expected(tenant_id: int) -> dict | None:
                if tenant_id == big.id:
                    return {"pageviews_today": 1, "whatsapp_clicks": 0}
                if clicks[tenant_id]:
                    return {"pageviews_today": 0, "whatsapp_clicks": clicks[tenant_id]}
                return None

            def settled() -> bool:
                for index, tenant_id in enumerate(watched):
                    want, got = expected(tenant_id), final(index)
                    if want is None:
                        continue
                    if got is None or any(got[k] != v for k, v in want.items()):
                        return False
                return True

            await eventually(settled, 20, what="every socket showing its tenant's numbers")
            await asyncio.sleep(0.6)  # more than two ticks: anything misrouted would show now
        finally:
            for task in collectors:
                task.cancel()

    for index, tenant_id in enumerate(watched):
        frames = received[index]
        if expected(tenant_id) is None:
            assert frames == [], f"a socket of quiet tenant {tenant_id} got {frames}"
            continue
        for frame in frames:
            assert frame["type"] in ("update", "event")
            if frame["type"] == "event":
                assert frame["data"]["metadata"] == {"tenant": tenant_id}
            else:
                data = frame["data"]
                assert data["visitors_today"] == 1
                if tenant_id == big.id:
                    assert data["pageviews_today"] == 1 and data["whatsapp_clicks"] == 0
                else:
                    assert data["pageviews_today"] == 0
                    assert 1 <= data["whatsapp_clicks"] <= clicks[tenant_id]
        # Coalescing: up to 25 events in a row, yet a socket sees a handful of updates.
        assert sum(f["type"] == "update" for f in frames) <= 8


def _stalled_socket(port: int) -> socket.socket:
    sock = socket.socket()
    # A tiny receive window, so the server's buffers fill after a few frames.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    sock.connect_ex(("127.0.0.1", port))
    return sock


async def test_a_client_that_never_reads_is_bounded_and_dropped(settings, database, pool, client):
    tenant = await create_tenant(pool, "Stalled", "UTC")
    _, token = await create_token(pool, tenant.id)
    served = create_app(dataclasses.replace(settings, live_send_timeout=1.0))
    listener = socket.socket()
    # Accepted sockets inherit this: a small send buffer makes the stall quick to reach.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/api/analytics/{tenant.id}/live?events=1"
    headers = bearer(token)

    async with in_process_server(served, listener):
        hub = served.extensions["live"]
        readers = [await connect(url, additional_headers=headers) for _ in range(2)]
        for ws in readers:
            assert orjson.loads(await ws.recv())["type"] == "snapshot"

        # The stalled client: a handshake, then it never reads again.
        others = set(hub.subscriptions(tenant.id))
        raw = _stalled_socket(port)
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection(sock=raw, limit=1024)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /api/analytics/{tenant.id}/live?events=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        assert (await reader.readline()).startswith(b"HTTP/1.1 101")
        await eventually(lambda: hub.watchers(tenant.id) >= 3, 5,
                         what="the stalled socket watching")
        (stalled,) = set(hub.subscriptions(tenant.id)) - others
        transport = writer.transport
        transport.pause_reading()  # and asyncio reads nothing more on its behalf

        got: list[list[int]] = [[], []]

        async def read(index: int) -> None:
            async for message in readers[index]:
                frame = orjson.loads(message)
                if frame["type"] == "update":
                    got[index].append(frame["data"]["pageviews_today"])

        reading = [asyncio.create_task(read(i)) for i in range(2)]
        backlogs = []
        events = 60
        started = time.monotonic()
        try:
            for _ in range(events):
                # Incompressible metadata: each frame to the stalled client is ~3 KB.
                padding = base64.b64encode(secrets.token_bytes(2200)).decode()
                response = await track(client, tenant.id, "pageview", {"pad": padding},
                                       address=new_address())
                assert response.status_code == 200
                backlogs.append(stalled.backlog)
                await asyncio.sleep(0.05)
            await eventually(lambda: all(g and g[-1] == events for g in got), 10,
                             what="the readers seeing every event")
            # The stalled socket was let go once a frame took longer than live_send_timeout.
            await eventually(lambda: hub.watchers(tenant.id) <= 2, 10,
                             what="the stalled socket dropped")
            assert stalled not in hub.subscriptions(tenant.id)
            # The readers go on as before.
            assert (await track(client, tenant.id, "pageview")).status_code == 200
            await eventually(lambda: all(g[-1] == events + 1 for g in got), 5,
                             what="the readers seeing the next event")
        finally:
            for task in reading:
                task.cancel()
            writer.close()
            for ws in readers:
                await ws.close()
    # The stalled socket's mailbox filled up (its sender was blocked) yet never held more
    # than the newest state and the last few events.
    assert max(backlogs) == 1 + hub.max_events, backlogs
    assert time.monotonic() - started < 30
