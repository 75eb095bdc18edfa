"""The one authorization path of REST endpoints, websockets and pages.

Credentials are a bearer token (programs), the quart-auth session cookie of a logged-in
owner (people), or a share link's token (a read-only dashboard: as bearer, or as `?share=`
on the live socket, which a browser cannot give headers). All are checked against Postgres
on every request: a revoked token or share, a logout or a removed membership takes effect at
once in every process. The one exception: a read of numbers that has read its tenant's
credentials generation (realtime/generations.py) in its one Redis round trip serves a bearer
token or share link Postgres confirmed under that same generation from the process's cache
(rechecked in Postgres at least once a `RECHECK`). Revoking one renews the generation
before and after (app/accounts/revocation.py), so the very next request in any process asks
Postgres again.

Principal kinds: "user" (an owner's session: reads and manages their tenants), "token" (a
tenant token: reads one tenant), "share" (reads one tenant, manages nothing), "platform"
(provisions tenants, reads none).

What a caller presents is read into `Presented`, from Quart's request or websocket, or from
the ASGI scope of the live socket served ahead of Quart (app/http/live_fastpath.py), which
sets it for its own context with `presenting()`; the check itself is the same for both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from quart import Quart, current_app, has_websocket_context, request, websocket
from quart_auth import QuartAuth
from werkzeug.http import parse_cookie
from werkzeug.sansio.utils import get_host

from app.accounts.hashed import digest
from app.accounts.sessions import SESSION_COOKIE, session_user
from app.accounts.shares import SHARE_PREFIX, verify_share
from app.accounts.tokens import LAST_USED_RESOLUTION, PLATFORM, verify_token
from app.http.errors import APIError, store_call
from app.services import Services, services


@dataclass(frozen=True)
class Principal:
    """Who is asking, and which tenants they may see."""

    kind: str  # "user", "token", "share" or "platform"
    subject_id: int
    tenant_ids: frozenset[int]


# A cached credential is confirmed in Postgres again after this long, which also keeps a
# token's last_used_at to its resolution.
RECHECK = LAST_USED_RESOLUTION


@dataclass(frozen=True)
class Verified:
    """A bearer credential Postgres confirmed at `checked_at`."""

    principal: Principal
    checked_at: dt.datetime
    expires_at: dt.datetime | None

    def holds(self, now: dt.datetime) -> bool:
        return ((self.expires_at is None or now < self.expires_at)
                and now - self.checked_at < RECHECK)


@dataclass(frozen=True, slots=True)
class Presented:
    """The credentials a request or socket presents, as sent."""

    authorization: str | None = None  # the Authorization header
    share: str | None = None  # `?share=` of a socket: a browser cannot give a socket headers
    cookie: str | None = None  # quart-auth's session cookie, still signed
    socket: bool = False
    origin: str | None = None  # sockets only: the page that opened it, and the Host it named
    host: str = ""

    @classmethod
    def of_quart(cls) -> Presented:
        """What the request or websocket of the current Quart context presents."""
        socket = has_websocket_context()
        connection = websocket if socket else request
        return cls(
            authorization=connection.headers.get("Authorization"),
            share=websocket.args.get("share") if socket else None,
            cookie=connection.cookies.get(SESSION_COOKIE),
            socket=socket,
            origin=connection.headers.get("Origin") if socket else None,
            host=connection.host if socket else "",
        )

    @classmethod
    def of_socket(cls, scope: dict) -> Presented:
        """What an ASGI websocket scope presents, read as Quart would read it."""
        headers: dict[bytes, str] = {}
        for name, value in scope["headers"]:  # the first of each, as Quart's .get() gives
            if name in _SOCKET_HEADERS:
                headers.setdefault(name, value.decode("latin-1"))
        query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        cookie = headers.get(b"cookie")
        return cls(
            authorization=headers.get(b"authorization"),
            share=query["share"][0] if "share" in query else None,
            cookie=parse_cookie(cookie).get(SESSION_COOKIE) if cookie else None,
            socket=True,
            origin=headers.get(b"origin"),
            host=get_host(scope["scheme"], headers.get(b"host"), scope.get("server")),
        )


_SESSION_AUTH = "session_auth"  # where the app keeps its QuartAuth


def init_session_auth(app: Quart) -> None:
    """quart-auth's sessions, under the cookie the config names (SESSION_COOKIE); their
    cookie is checked by `authenticate`."""
    app.extensions[_SESSION_AUTH] = QuartAuth(app)


_SOCKET_HEADERS = frozenset({b"authorization", b"cookie", b"origin", b"host"})
# Set by a socket served outside Quart, for its own context (its tasks and timers copy it).
_presented_outside_quart: ContextVar[tuple[Quart, Services, Presented]] = ContextVar(
    "presented_outside_quart")


@contextlib.contextmanager
def presenting(app: Quart, svc: Services, presented: Presented) -> Iterator[None]:
    """Makes `authorize()` and friends check `presented` in this context, outside Quart."""
    token = _presented_outside_quart.set((app, svc, presented))
    try:
        yield
    finally:
        _presented_outside_quart.reset(token)


def _asking() -> tuple[Quart, Services, Presented]:
    outside = _presented_outside_quart.get(None)
    if outside is not None:
        return outside
    app = current_app._get_current_object()
    return app, services(), Presented.of_quart()


def _now(svc: Services) -> dt.datetime:
    return dt.datetime.fromtimestamp(svc.clock(), dt.UTC)


def _same_origin(svc: Services, presented: Presented) -> bool:
    # Browsers attach cookies to a websocket opened by any page and CORS does not apply,
    # so a cookie only counts when the page that opened the socket is ours.
    origin = presented.origin
    if origin is None:
        return True
    public_url = svc.settings.public_url
    if public_url:  # our address, rather than the Host header the client chose
        return origin.lower() == public_url.lower()
    return urlsplit(origin).netloc.lower() == presented.host.lower()


async def authenticate(cached_under: tuple[int, bytes] | None = None) -> Principal | None:
    """The principal behind this request's credentials, or None; APIError 503 when Postgres
    cannot tell. With `cached_under` (tenant, its credentials generation, read before this
    call), a bearer credential may come from the process's cache of that generation."""
    app, svc, presented = _asking()
    async with store_call():
        return await _authenticate(app, svc, presented, cached_under)


async def _authenticate(app: Quart, svc: Services, presented: Presented,
                        cached_under: tuple[int, bytes] | None) -> Principal | None:
    if presented.authorization is not None:
        # Credentials sent explicitly decide alone: a bad token is not rescued by a cookie.
        credentials = bearer_credentials(presented.authorization)
        if credentials is None:
            return None
        return await _bearer(svc, credentials, cached_under)

    if presented.share is not None:
        verified = await _verify_share(svc, presented.share, _now(svc))
        return verified.principal if verified else None

    if presented.cookie is None or (presented.socket and not _same_origin(svc, presented)):
        return None
    # quart-auth's own check of the cookie's signature and age (SECRET_KEY and fallbacks)
    session_id = app.extensions[_SESSION_AUTH].load_token(presented.cookie, app)
    if session_id is None:
        return None
    found = await session_user(svc.pool, session_id, _now(svc))
    if found is None:
        return None
    return Principal("user", found.user_id, found.tenant_ids)


def bearer_credentials(header: str) -> str | None:
    """The credentials of an `Authorization: Bearer ...` header; None for any other."""
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def cached_bearer(svc: Services, tenant_id: int, generation: bytes, credentials: str,
                  now: dt.datetime) -> Principal | None:
    """The principal of a bearer credential Postgres confirmed under the tenant's current
    credentials generation, if the process holds it and it still holds; no I/O."""
    found = svc.credentials.get((tenant_id, digest(credentials)), generation)
    return found.principal if found is not None and found.holds(now) else None


async def _bearer(svc: Services, credentials: str,
                  cached_under: tuple[int, bytes] | None) -> Principal | None:
    now = _now(svc)
    if cached_under is not None:
        found = cached_bearer(svc, *cached_under, credentials, now)
        if found is not None:
            return found
    verified = await _verify_bearer(svc, credentials, now)
    if verified is None:
        return None
    # Only what the generation covers: a credential of this tenant (not another tenant's
    # token, whose revocation renews that tenant's generation, nor a platform token).
    if cached_under is not None and verified.principal.tenant_ids == {cached_under[0]}:
        tenant_id, generation = cached_under
        svc.credentials.put((tenant_id, digest(credentials)), generation, verified)
    return verified.principal


async def _verify_bearer(svc: Services, credentials: str, now: dt.datetime) -> Verified | None:
    """A token or share link, confirmed in Postgres now."""
    if credentials.startswith(SHARE_PREFIX):
        return await _verify_share(svc, credentials, now)
    token = await verify_token(svc.pool, credentials, now)
    if token is None:
        return None
    if token.kind == PLATFORM:
        return Verified(Principal("platform", token.id, frozenset()), now, token.expires_at)
    return Verified(Principal("token", token.id, frozenset({token.tenant_id})), now,
                    token.expires_at)


async def _verify_share(svc: Services, token: str, now: dt.datetime) -> Verified | None:
    share = await verify_share(svc.pool, token, now)
    if share is None:
        return None
    return Verified(Principal("share", share.id, frozenset({share.tenant_id})), now,
                    share.expires_at)


async def authorize(tenant_id: int, credentials_generation: bytes | None = None) -> Principal:
    """The principal allowed to see `tenant_id`; APIError 401 or 403 otherwise. With the
    tenant's credentials generation (read before this call), a bearer credential may come
    from the process's cache."""
    principal = await authenticate(
        None if credentials_generation is None else (tenant_id, credentials_generation))
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


async def authorize_owner(tenant_id: int) -> Principal:
    """For management routes: an owner's session covering `tenant_id`. 401 without
    credentials; 403 for other credentials (tokens and share links read, they never manage)."""
    principal = await authenticate()
    if principal is None:
        raise APIError(401, "authentication required: log in as an owner of this tenant")
    if principal.kind != "user":
        raise APIError(403, "only an owner's session manages a tenant; tokens and share links "
                            "only read")
    if tenant_id not in principal.tenant_ids:
        raise APIError(403, f"your account does not cover tenant {tenant_id}")
    return principal


async def authorize_platform() -> Principal:
    """For provisioning routes: a platform token. 401 without credentials, 403 with others."""
    principal = await authenticate()
    if principal is None:
        raise APIError(401, "authentication required: send Authorization: Bearer "
                            "<platform token>")
    if principal.kind != "platform":
        raise APIError(403, "only a platform token may provision (analytics token create "
                            "--platform)")
    return principal
