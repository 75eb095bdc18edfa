"""`analytics serve`'s HTTP protocol (app/http/http_protocol.py): each response in one write,
a streamed one as it is produced, and a websocket handed the connection's own transport."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from app.http.http_protocol import HeldWrites, OneWriteProtocol
from app.http.ws_protocol import WS_PROTOCOL

BODY = b'{"success":true}'


class Recorded(asyncio.Transport):
    """What a connection's transport was asked to do, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []
        self.protocol: asyncio.BaseProtocol | None = None
        self.closing = False

    def writes(self) -> list[bytes]:
        return [data for name, data in self.calls if name == "write"]

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def whole(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


def connection(app) -> tuple[OneWriteProtocol, Recorded]:
    config = uvicorn.Config(app, http=OneWriteProtocol, ws=WS_PROTOCOL, lifespan="off",
                            log_config=None)
    protocol = OneWriteProtocol(config=config, server_state=ServerState(), app_state={})
    transport = Recorded()
    protocol.connection_made(transport)
    return protocol, transport


async def until(condition, turns: int = 100) -> None:
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the connection did not get there")


async def test_a_response_goes_out_in_one_write_as_soon_as_it_is_complete():
    written_when_sent: list[int] = []

    async def app(scope, receive, send) -> None:
        await whole(scope, receive, send)
        written_when_sent.append(len(transport.writes()))

    protocol, transport = connection(app)
    protocol.data_received(b"POST /api/analytics/track HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 2\r\n\r\n{}")
    await until(lambda: written_when_sent)
    assert written_when_sent == [1]  # not held for the loop's next turn
    for _ in range(5):  # nothing more follows once the loop turns
        await asyncio.sleep(0)
    [written] = transport.writes()
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert written.endswith(b"\r\n\r\n" + BODY)
    assert b"content-length: 16\r\n" in written

    # The connection stays open for the next request, whose answer is one write too.
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: len(written_when_sent) == 2)
    assert written_when_sent == [1, 2]
    assert transport.writes()[1].endswith(BODY)
    assert ("close", None) not in transport.calls


async def test_a_response_that_closes_the_connection_is_written_before_the_close():
    protocol, transport = connection(whole)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await until(lambda: transport.closing)
    assert [name for name, _ in transport.calls] == ["write", "close"]
    assert transport.writes()[0].endswith(BODY)


async def test_a_streamed_response_goes_out_as_it_is_produced():
    more = asyncio.Event()

    async def streamed(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await more.wait()
        await send({"type": "http.response.body", "body": b"last"})

    protocol, transport = connection(streamed)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    # The head and the first chunk leave while the app still waits for its next one.
    await until(lambda: transport.writes())
    [head] = transport.writes()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"\r\n\r\n5\r\nfirst\r\n")
    more.set()
    await until(lambda: len(transport.writes()) == 2)
    assert transport.writes()[1] == b"4\r\nlast\r\n0\r\n\r\n"


async def test_a_websocket_takes_the_connection_with_its_own_transport():
    async def socket_app(scope, receive, send) -> None:
        assert scope["type"] == "websocket"
        await receive()
        await send({"type": "websocket.accept"})

    protocol, transport = connection(socket_app)
    protocol.data_received(
        b"GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await until(lambda: transport.writes())
    assert transport.protocol is not None and transport.protocol is not protocol
    assert transport.protocol.transport is transport  # not held behind HeldWrites
    [accepted] = transport.writes()
    assert accepted.startswith(b"HTTP/1.1 101 ")


async def test_held_writes_go_out_before_the_end_of_the_stream():
    transport = Recorded()
    transport.write_eof = lambda: transport.calls.append(("eof", None))  # type: ignore[method-assign]
    held = HeldWrites(transport, asyncio.get_running_loop())
    held.write(b"last ")
    held.write(b"words")
    held.write_eof()
    assert transport.calls == [("write", b"last words"), ("eof", None)]


async def test_held_writes_are_dropped_by_an_abort_and_never_sent_to_a_closing_transport():
    transport = Recorded()
    transport.abort = lambda: transport.calls.append(("abort", None))  # type: ignore[method-assign]
    held = HeldWrites(transport, asyncio.get_running_loop())
    held.write(b"lost")
    held.abort()
    await asyncio.sleep(0)
    assert transport.calls == [("abort", None)]

    transport = Recorded()
    held = HeldWrites(transport, asyncio.get_running_loop())
    held.write(b"late")
    transport.closing = True  # closed underneath, say by the peer
    await asyncio.sleep(0)
    assert transport.writes() == []
