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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlsplit

from quart import has_websocket_context, request, websocket
from quart_auth import current_user

from app.accounts.hashed import digest
from app.accounts.sessions import session_user
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


async def authenticate(cached_under: tuple[int, bytes] | None = None) -> Principal | None:
    """The principal behind this request's credentials, or None; APIError 503 when Postgres
    cannot tell. With `cached_under` (tenant, its credentials generation, read before this
    call), a bearer credential may come from the process's cache of that generation."""
    async with store_call():
        return await _authenticate(cached_under)


async def _authenticate(cached_under: tuple[int, bytes] | None) -> Principal | None:
    header = _connection().headers.get("Authorization")
    if header is not None:
        # Credentials sent explicitly decide alone: a bad token is not rescued by a cookie.
        credentials = bearer_credentials(header)
        if credentials is None:
            return None
        return await _bearer(credentials, cached_under)

    if has_websocket_context() and "share" in websocket.args:
        verified = await _verify_share(websocket.args["share"], _now())
        return verified.principal if verified else None

    session_id = current_user.auth_id  # None unless the cookie's signature and age are good
    if session_id is None or (has_websocket_context() and not _same_origin()):
        return None
    found = await session_user(services().pool, session_id, _now())
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


async def _bearer(credentials: str, cached_under: tuple[int, bytes] | None) -> Principal | None:
    svc, now = services(), _now()
    if cached_under is not None:
        found = cached_bearer(svc, *cached_under, credentials, now)
        if found is not None:
            return found
    verified = await _verify_bearer(credentials, now)
    if verified is None:
        return None
    # Only what the generation covers: a credential of this tenant (not another tenant's
    # token, whose revocation renews that tenant's generation, nor a platform token).
    if cached_under is not None and verified.principal.tenant_ids == {cached_under[0]}:
        tenant_id, generation = cached_under
        svc.credentials.put((tenant_id, digest(credentials)), generation, verified)
    return verified.principal


async def _verify_bearer(credentials: str, now: dt.datetime) -> Verified | None:
    """A token or share link, confirmed in Postgres now."""
    if credentials.startswith(SHARE_PREFIX):
        return await _verify_share(credentials, now)
    token = await verify_token(services().pool, credentials, now)
    if token is None:
        return None
    if token.kind == PLATFORM:
        return Verified(Principal("platform", token.id, frozenset()), now, token.expires_at)
    return Verified(Principal("token", token.id, frozenset({token.tenant_id})), now,
                    token.expires_at)


async def _verify_share(token: str, now: dt.datetime) -> Verified | None:
    share = await verify_share(services().pool, token, now)
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
