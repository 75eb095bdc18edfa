"""uvicorn's websockets-sansio protocol, minus what an idle socket need not keep.

Every open socket keeps its protocol object for its whole life. uvicorn's keeps the
handshake's request and response after the handshake (their headers parsed into websockets'
Headers; websockets' parser holds the request too: about 5 KB), an asyncio.Queue (three
deques and an Event: about 3 KB) and an asyncio.Event (about 1 KB) that one reader and one
writer use. This subclass drops the handshake once the socket is open and uses a list and a
flag instead. `analytics serve` runs it (`--ws app.http.ws_protocol:LeanWebSocketProtocol`
on uvicorn's command line).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, State

WS_PROTOCOL = "app.http.ws_protocol:LeanWebSocketProtocol"


class _Mailbox:
    """What uvicorn uses of asyncio.Queue (put_nowait, get, empty), holding a list."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future] = []

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        _wake(self._waiters)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            await _wait(self._waiters)
        return self._items.pop(0)  # at most a few: uvicorn stops reading until one is taken


class _Flag:
    """What uvicorn uses of asyncio.Event (set, clear, is_set, wait)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future] = []

    def set(self) -> None:
        self._set = True
        _wake(self._waiters)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> bool:
        while not self._set:
            await _wait(self._waiters)
        return True


def _wake(waiters: list[asyncio.Future]) -> None:
    # Each waiter looks again for itself, so waking them all is right.
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()


async def _wait(waiters: list[asyncio.Future]) -> None:
    waiter = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        if waiter in waiters:
            waiters.remove(waiter)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Mailbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            # Only the accept and a denial use them, and both are behind us.
            self.request = self.response = None
            if self.conn.state is State.OPEN:
                # websockets' parser is a generator that read the request into a local and
                # then reads frames for the connection's life, keeping the request with it.
                # A client sends no frame before our 101, so a fresh frame parser takes over
                # at a frame boundary (websockets swaps its parser the same way on a close).
                self.conn.parser = Protocol.parse(self.conn)
                next(self.conn.parser)
