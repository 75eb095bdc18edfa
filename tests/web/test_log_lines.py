"""No query string in the logs: the websocket handshake line uvicorn logs kept it whole
(security review, second pass, finding 12: `?events=1` today, a share token tomorrow)."""

from __future__ import annotations

import asyncio
import logging
import signal

from websockets.asyncio.client import connect

from app.logs import LOGGING, DropQueryStrings, RedactAddresses
from tests.support.servers import free_port, start_process, wait_for_port

SECRET = "s3cret-share-token"


async def test_the_websocket_request_line_is_logged_without_its_query(settings, database,
                                                                       tenant, auth_headers):
    port = free_port()
    web = start_process(settings, "serve", PORT=port, WEB_CONCURRENCY=1)
    try:
        await asyncio.to_thread(wait_for_port, port)
        url = f"ws://127.0.0.1:{port}/api/analytics/{tenant.id}/live?events=1&share={SECRET}"
        async with connect(url, additional_headers=auth_headers) as ws:
            assert b"snapshot" in (await asyncio.wait_for(ws.recv(), 10)).encode()
    finally:
        web.send_signal(signal.SIGTERM)
        output, _ = web.communicate(timeout=20)
    # The line is there (so this test checks something), its path whole, its query gone.
    assert f'"WebSocket /api/analytics/{tenant.id}/live" [accepted]' in output, output
    assert SECRET not in output and "events=1" not in output


def test_access_lines_lose_their_query_too():
    # The access log is off (WARNING) by default; whoever turns it on gets no query strings.
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("203.0.113.7:5000", "GET", f"/login?next=/x&share={SECRET}", "1.1", 200), None)
    formatter = logging.Formatter(LOGGING["formatters"]["default"]["format"])
    assert DropQueryStrings().filter(record) and RedactAddresses().filter(record)
    line = formatter.format(record)
    assert "GET /login HTTP/1.1" in line
    assert SECRET not in line and "203.0.113.7" not in line
