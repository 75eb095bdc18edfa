"""The one authorization path of REST endpoints, websockets and pages.

Credentials are a bearer token (programs) or the quart-auth session cookie of a logged-in
owner (people). Both are checked against Postgres on every request: a revoked token, a
logout or a removed membership takes effect at once in every process.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlsplit

from quart import has_websocket_context, request, websocket
from quart_auth import current_user

from app.accounts.sessions import session_user
from app.accounts.tokens import verify_token
from app.http.errors import APIError, store_call
from app.services import services


@dataclass(frozen=True)
class Principal:
    """Who is asking, and which tenants they may see."""

    kind: str  # "token" or "user"
    subject_id: int
    tenant_ids: frozenset[int]


def _connection():
    return websocket if has_websocket_context() else request


def _now() -> dt.datetime:
    return dt.datetime.fromtimestamp(services().clock(), dt.UTC)


def _same_origin() -> bool:
    # Browsers attach cookies to a websocket opened by any page and CORS does not apply,
    # so a cookie only counts when the page that opened the socket is ours.
    origin = websocket.headers.get("Origin")
    if origin is None:
        return True
    public_url = services().settings.public_url
    if public_url:  # our address, rather than the Host header the client chose
        return origin.lower() == public_url.lower()
    return urlsplit(origin).netloc.lower() == websocket.host.lower()


async def authenticate() -> Principal | None:
    """The principal behind this request's credentials, or None; APIError 503 when Postgres
    cannot tell."""
    async with store_call():
        return await _authenticate()


async def _authenticate() -> Principal | None:
    header = _connection().headers.get("Authorization")
    if header is not None:
        # Credentials sent explicitly decide alone: a bad token is not rescued by a cookie.
        scheme, _, credentials = header.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            return None
        token = await verify_token(services().pool, credentials, _now())
        if token is None:
            return None
        return Principal("token", token.id, frozenset({token.tenant_id}))

    session_id = current_user.auth_id  # None unless the cookie's signature and age are good
    if session_id is None or (has_websocket_context() and not _same_origin()):
        return None
    found = await session_user(services().pool, session_id, _now())
    if found is None:
        return None
    return Principal("user", found.user_id, found.tenant_ids)


async def authorize(tenant_id: int) -> Principal:
    """The principal allowed to see `tenant_id`; APIError 401 or 403 otherwise."""
    principal = await authenticate()
    if principal is None:
        raise APIError(401, "authentication required: log in or send Authorization: Bearer <token>")
    if tenant_id not in principal.tenant_ids:
        raise APIError(403, f"these credentials do not cover tenant {tenant_id}")
    return principal


class LoginRequired(Exception):
    """A page was asked for without a session; answered with a redirect to /login."""


async def require_owner() -> Principal:
    """For HTML pages: the logged-in owner; LoginRequired otherwise."""
    principal = await authenticate()
    if principal is None or principal.kind != "user":
        raise LoginRequired()
    return principal
