"""The one authorization path of REST endpoints and websockets."""

from __future__ import annotations

from dataclasses import dataclass

from quart import has_websocket_context, request, websocket

from app.errors import APIError
from app.services import services
from app.tokens import verify_token


@dataclass(frozen=True)
class Principal:
    """Who is asking, and which tenants they may see."""

    kind: str  # "token" or "user"
    subject_id: int
    tenant_ids: frozenset[int]


def _headers():
    return websocket.headers if has_websocket_context() else request.headers


async def authenticate() -> Principal | None:
    header = _headers().get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        token = await verify_token(services().pool, credentials.strip())
        if token is not None:
            return Principal("token", token.id, frozenset({token.tenant_id}))
    return None


async def authorize(tenant_id: int) -> Principal:
    """The principal allowed to see `tenant_id`; APIError 401 or 403 otherwise."""
    principal = await authenticate()
    if principal is None:
        raise APIError(401, "authentication required: log in or send Authorization: Bearer <token>")
    if tenant_id not in principal.tenant_ids:
        raise APIError(403, f"these credentials do not cover tenant {tenant_id}")
    return principal
