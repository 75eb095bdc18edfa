"""uvicorn's httptools protocol, sending each response in one write.

uvicorn writes a response's status line and headers as soon as the app sends them, then the
body in a second write: two system calls, and on loopback or a LAN two segments that wake the
reader twice. Here the connection's transport holds what is written until the response is
complete, the connection closes, or the event loop turns (so a streamed response still goes
out as it is produced), and sends it in one write. `analytics serve` runs it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HTTP_PROTOCOL = "app.http.http_protocol:OneWriteProtocol"


class HeldWrites:
    """A transport's writes, held and sent together; everything else is the transport's."""

    __slots__ = ("raw", "_held", "_loop", "_soon")

    def __init__(self, raw: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.raw = raw
        self._held: list[bytes] = []
        self._loop = loop
        self._soon: asyncio.Handle | None = None  # the flush at the loop's next turn

    def write(self, data: bytes) -> None:
        self._held.append(data)
        if self._soon is None:  # whatever nobody flushes goes out when the loop turns
            self._soon = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._soon is not None:  # a complete response: the loop has nothing left to do
            self._soon.cancel()
            self._soon = None
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        if not self.raw.is_closing():
            self.raw.write(data)

    def close(self) -> None:
        self.flush()
        self.raw.close()

    def write_eof(self) -> None:
        self.flush()
        self.raw.write_eof()

    def abort(self) -> None:
        self._held.clear()
        self.raw.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class OneWriteProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeldWrites(transport, self.loop))  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()

    def handle_websocket_upgrade(self) -> None:
        # The websocket protocol takes the connection over with the transport itself.
        self.transport.flush()  # type: ignore[attr-defined]
        self.transport = self.transport.raw  # type: ignore[attr-defined]
        super().handle_websocket_upgrade()
