"""WS /api/analytics/{id}/live served straight from ASGI, ahead of Quart.

Idle dashboards are many, and Quart gives each socket a queue, two tasks, a websocket object
with its own copy of the headers and a request context: more than the socket itself. Here a
socket is the server's own task running `app.routes.live.serve` (the same function the Quart
route runs) over the ASGI connection, plus the one task that reads what the client sends.
The credentials are read from the scope into `Presented` and checked by app/http/auth.py in
this socket's context; the denials are the same JSON answers Quart would give, through the
ASGI "websocket.http.response" extension (or a close before the handshake, as Quart does
without it). A path Quart would not take as an id (a leading zero, past 2^63-1) and any
socket before the app serves go to Quart unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from quart import Quart

from app.accounts.tenants import UnknownTenant
from app.http.auth import Presented, presenting
from app.http.errors import APIError, error_body
from app.http.fastpath import ASGIApp, Scope, send_answer
from app.http.ids import MAX_ID
from app.routes.live import serve, wants_feed

log = logging.getLogger(__name__)

# Ids as Werkzeug's converter reads them back: no sign, no leading zero.
_PATH = re.compile(r"/api/analytics/([1-9][0-9]{0,18})/live")
_JSON = [(b"content-type", b"application/json")]


class LiveFastPath:
    def __init__(self, app: Quart, inner: ASGIApp) -> None:
        self.app = app
        self.inner = inner

    def __call__(self, scope: Scope, receive: Callable, send: Callable) -> Awaitable[None]:
        # Not a coroutine itself: a socket's life is long, and each frame waiting in the
        # chain of ASGI callables is a few hundred bytes.
        matched = _PATH.fullmatch(scope["path"]) if scope["type"] == "websocket" else None
        if matched is None or int(matched[1]) > MAX_ID or "live" not in self.app.extensions:
            return self.inner(scope, receive, send)
        return self._serve(int(matched[1]), scope, receive, send)

    async def _serve(self, tenant_id: int, scope: Scope, receive: Callable,
                     send: Callable) -> None:
        svc, hub = self.app.extensions["analytics"], self.app.extensions["live"]
        query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        feed = wants_feed(query["events"][0] if "events" in query else None)
        denials = "websocket.http.response" in (scope.get("extensions") or {})
        socket = _ASGISocket(receive, send)
        with presenting(self.app, svc, Presented.of_socket(scope)):
            # Read once, never again: the server and the callables before this one hold the
            # same scope for the socket's life, so its copy of the headers goes.
            scope["headers"] = []
            del scope, query
            try:
                await serve(svc, hub, tenant_id, feed, socket)
            except APIError as error:
                await socket.deny(denials, error.status, error_body(error.message),
                                  error.headers)
            except UnknownTenant as error:
                await socket.deny(denials, 404, error_body(str(error)))
            except Exception as error:
                if socket.accepted and isinstance(error, OSError):
                    return  # the client left as a frame went out (uvicorn's ClientDisconnected)
                log.exception("unhandled error on the live socket")
                if not socket.accepted:
                    await socket.deny(denials, 500, error_body("internal error"))
                else:  # what Quart does after the handshake
                    with contextlib.suppress(Exception):
                        await socket.close(1000, "")


class _ASGISocket:
    """app.routes.live.Socket over the ASGI connection."""

    __slots__ = ("_receive", "_send", "accepted", "gone")

    def __init__(self, receive: Callable, send: Callable) -> None:
        self._receive = receive
        self._send = send
        self.accepted = False
        self.gone = False

    async def accept(self) -> None:
        self.accepted = True
        await self._send({"type": "websocket.accept"})

    async def send(self, frame: str) -> None:
        await self._send({"type": "websocket.send", "text": frame})

    async def close(self, code: int, reason: str) -> None:
        if not self.gone:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    async def receive(self) -> bool:
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self.gone = True
        return not self.gone

    async def deny(self, denials: bool, status: int, body: bytes,
                   headers: dict[str, str] | None = None) -> None:
        """Refuses the handshake with an HTTP answer, as Quart answers a handler's error."""
        if not denials:  # the server cannot answer with HTTP: a close, as Quart sends
            await self._send({"type": "websocket.close", "code": 1000})
            return
        await send_answer(self._send, status, _JSON, body, headers, prefix="websocket.http")
