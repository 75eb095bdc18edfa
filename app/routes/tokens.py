"""/api/analytics/{tenantId}/tokens: owners create, list and revoke their API tokens."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, StrictStr
from quart import Blueprint
from quart_schema import document_request, document_response, security_scheme

from app.accounts.revocation import revoke_token_everywhere
from app.accounts.tokens import MAX_LABEL_CHARS, Token, create_token, list_tokens
from app.http.auth import authorize_owner
from app.http.bodies import MAX_DAYS, JSONConfirm, RevokedResponse, iso, json_body, now
from app.http.errors import APIError, document_errors, store_call
from app.services import services

blueprint = Blueprint("tokens", __name__)
@dataclass
class NewToken:
    label: Annotated[StrictStr, Field(max_length=MAX_LABEL_CHARS, pattern=r"^[^\x00]*$")] = ""
    expires_in_days: Annotated[int | None, Field(ge=1, le=MAX_DAYS)] = None


@dataclass
class TokenInfo:
    id: int
    label: str
    created_at: str
    last_used_at: str | None
    expires_at: str | None
    revoked_at: str | None


@dataclass
class CreatedToken(TokenInfo):
    token: str  # shown this once


@dataclass
class CreatedTokenResponse:
    success: bool
    data: CreatedToken


@dataclass
class TokenList:
    tokens: list[TokenInfo]


@dataclass
class TokenListResponse:
    success: bool
    data: TokenList


def token_info(token: Token) -> dict:
    return {"id": token.id, "label": token.label, "created_at": iso(token.created_at),
            "last_used_at": iso(token.last_used_at), "expires_at": iso(token.expires_at),
            "revoked_at": iso(token.revoked_at)}


@blueprint.get("/api/analytics/<int:tenant_id>/tokens")
@security_scheme([{"session": []}])
@document_response(TokenListResponse)
@document_errors(401, 403, 404, 503)
async def get_tokens(tenant_id: int) -> dict:
    """The tenant's API tokens, revoked ones included, without their secrets. Owners only."""
    await authorize_owner(tenant_id)
    async with store_call():
        tokens = await list_tokens(services().pool, tenant_id)
    return {"success": True, "data": {"tokens": [token_info(t) for t in tokens]}}


@blueprint.post("/api/analytics/<int:tenant_id>/tokens")
@security_scheme([{"session": []}])
@document_request(NewToken)
@document_response(CreatedTokenResponse, 201)
@document_errors(400, 401, 403, 404, 413, 415, 503)
async def post_token(tenant_id: int) -> tuple[dict, int]:
    """Create an API token that reads this tenant's numbers; `token` is shown only here.
    Owners only (JSON body)."""
    await authorize_owner(tenant_id)
    body = await json_body(NewToken, '{"label"?: "...", "expires_in_days"?: 1..3650}')
    expires_at = None
    if body.expires_in_days is not None:
        expires_at = now() + dt.timedelta(days=body.expires_in_days)
    async with store_call():
        token, plaintext = await create_token(services().pool, tenant_id, body.label, expires_at)
    return {"success": True, "data": {**token_info(token), "token": plaintext}}, 201


@blueprint.delete("/api/analytics/<int:tenant_id>/tokens/<int:token_id>")
@security_scheme([{"session": []}])
@document_request(JSONConfirm)
@document_response(RevokedResponse)
@document_errors(400, 401, 403, 404, 503)
async def delete_token(tenant_id: int, token_id: int) -> dict:
    """Revoke a token of this tenant at once. Owners only."""
    await authorize_owner(tenant_id)
    async with store_call():
        svc = services()
        done = await revoke_token_everywhere(svc.pool, svc.redis, svc.keys, token_id, tenant_id)
    if not done:
        raise APIError(404, f"tenant {tenant_id} has no active token {token_id}")
    return {"success": True, "data": {"id": token_id, "revoked": True}}
