"""Live sockets through a Redis outage, on a Redis server of this test's own (make test-faults)."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil

import orjson
import pytest
from quart.testing import WebsocketResponseError
from quart.testing.connections import WebsocketDisconnectError

from app.accounts.tokens import create_token
from app.factory import create_app
from tests.support.http import bearer, track
from tests.support.polling import eventually
from tests.support.servers import RedisServer

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


async def test_redis_outage_closes_sockets_with_1013_and_recovers(settings, database, pool, tenant):
    redis_server = RedisServer().start()
    app = create_app(dataclasses.replace(settings, redis_url=redis_server.url,
                                         live_reconnect_delays=(0.1, 0.5)))
    _, token = await create_token(pool, tenant.id)
    path = f"/api/analytics/{tenant.id}/live"
    headers = bearer(token)
    try:
        async with app.test_app():
            hub = app.extensions["live"]
            await eventually(lambda: hub.connected, 5, what="the hub connected")
            client = app.test_client()
            async with client.websocket(path, headers=headers) as ws:
                assert orjson.loads(await ws.receive())["type"] == "snapshot"

                redis_server.stop()
                with pytest.raises(WebsocketDisconnectError) as closed:
                    async with asyncio.timeout(10):
                        while True:
                            await ws.receive()
                assert closed.value.args[0] == 1013

            # While Redis is away a dashboard is told so before any frame: HTTP 503.
            async with client.websocket(path, headers=headers) as ws:
                with pytest.raises(WebsocketResponseError) as refused:
                    await asyncio.wait_for(ws.receive(), 5)
            assert refused.value.response.status_code == 503

            redis_server.start()
            await eventually(lambda: hub.connected, 10, what="the hub reconnected")
            async with client.websocket(path, headers=headers) as ws:
                first = orjson.loads(await ws.receive())
                assert first["type"] == "snapshot"
                # The ingestion client never retries (a script must not run twice), so its
                # first call on a connection that died with the old Redis may be a 503.
                statuses = [(await track(client, tenant.id, "click_call")).status_code]
                if statuses[0] == 503:
                    statuses.append((await track(client, tenant.id, "click_call")).status_code)
                assert statuses[-1] == 200
                async with asyncio.timeout(5):
                    while (frame := orjson.loads(await ws.receive()))["type"] != "update":
                        pass
                assert frame["data"]["call_clicks"] == 1
    finally:
        redis_server.close()
