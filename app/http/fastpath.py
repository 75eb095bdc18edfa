"""POST /api/analytics/track answered straight from ASGI, ahead of Quart.

The endpoint is `app.track.accept_event`; this adapter only reads the request and writes
the reply. Quart's request and response objects, context locals, timeouts and hooks cost
more than the endpoint itself, so the hottest path skips them. Every other request (the
preflight included) goes to Quart unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from quart import Quart

from app.accounts.tenants import UnknownTenant
from app.http.errors import MESSAGES, APIError, error_body
from app.http.headers import CORS
from app.routes.track import SUCCESS, TRACK_PATH, Delivery, accept_event, ignored_headers
from realtime.validation import MAX_BODY_BYTES

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]
_WANTED = {b"content-type", b"content-length", b"user-agent", b"referer", b"x-forwarded-for"}


class ClientGone(Exception):
    pass


async def send_answer(send: Callable, status: int, headers: list[tuple[bytes, bytes]],
                      body: bytes, extra: dict[str, str] | None = None,
                      prefix: str = "http") -> None:
    """An ASGI answer whole: `headers` (lower-case, encoded), its Content-Length and `extra`,
    then the body. `prefix` "websocket.http" refuses a handshake with it (the websocket
    denial extension)."""
    await send({
        "type": f"{prefix}.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in (extra or {}).items())],
    })
    await send({"type": f"{prefix}.response.body", "body": body})


async def read_body(receive: Callable, limit: int, timeout: float) -> bytes:
    first = await receive()  # a beacon's body nearly always comes whole, in one message
    if first["type"] == "http.request" and not first.get("more_body", False):
        if len(first.get("body", b"")) > limit:
            raise APIError(413, MESSAGES[413])
        return first.get("body", b"")
    try:
        async with asyncio.timeout(timeout):
            return await _read_rest(receive, limit, first)
    except TimeoutError:
        raise APIError(408, "the request body took too long to arrive") from None


async def _read_rest(receive: Callable, limit: int, message: dict) -> bytes:
    chunks, size = [], 0
    while True:
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise APIError(413, MESSAGES[413])
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


class TrackFastPath:
    def __init__(self, app: Quart, inner: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.inner = inner
        fixed = {**CORS, **headers, "Content-Type": "application/json"}
        self.fixed = [(k.lower().encode(), v.encode()) for k, v in fixed.items()]

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        svc = self.app.extensions.get("analytics")
        if (scope["type"] != "http" or scope["path"] != TRACK_PATH or scope["method"] != "POST"
                or svc is None):
            await self.inner(scope, receive, send)
            return
        headers = {name: value.decode("latin-1") for name, value in scope["headers"]
                   if name in _WANTED}
        if b"x-forwarded-for" in headers:  # every line of it, not only the last
            forwarded_for = [value.decode("latin-1") for name, value in scope["headers"]
                             if name == b"x-forwarded-for"]
        else:
            forwarded_for = []
        status, body, extra = 200, SUCCESS, {}
        try:
            if int(headers.get(b"content-length") or 0) > MAX_BODY_BYTES:
                raise APIError(413, MESSAGES[413])
            payload = await read_body(receive, MAX_BODY_BYTES, svc.settings.track_body_timeout)
            client = scope.get("client")
            reason = await accept_event(svc, Delivery(
                mimetype=headers.get(b"content-type", "").split(";", 1)[0].strip().lower(),
                body=payload,
                user_agent=headers.get(b"user-agent", ""),
                referrer=headers.get(b"referer", ""),
                forwarded_for=forwarded_for,
                remote_addr=client[0] if client else None,
            ))
            extra = ignored_headers(reason)
        except ClientGone:
            return
        except APIError as error:
            status, body, extra = error.status, error_body(error.message), error.headers
        except UnknownTenant as error:
            status, body = 404, error_body(str(error))
        except ValueError:  # a Content-Length that is not a number
            status, body = 400, error_body(MESSAGES[400])
        except Exception:
            log.exception("unhandled error on %s", TRACK_PATH)
            status, body = 500, error_body("internal error")
        await send_answer(send, status, self.fixed, body, extra)
