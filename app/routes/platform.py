"""/api/platform: the hosting platform provisions tenants, owners and tenant tokens.

Only a platform token (`analytics token create --platform`) is accepted here; tenant tokens
and owners' sessions get 403, no credentials 401. A platform token reads no tenant's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, StrictStr
from quart import Blueprint
from quart_schema import document_request, document_response, security_scheme

from app.accounts.tenants import InvalidTimezone, create_tenant, get_tenant
from app.accounts.tokens import MAX_LABEL_CHARS, create_token
from app.accounts.users import AccountError, add_membership, create_user
from app.http.auth import authorize_platform
from app.http.bodies import json_body
from app.http.errors import APIError, document_errors, store_call
from app.services import services

blueprint = Blueprint("platform", __name__)
NUL_FREE = r"^[^\x00]*$"


@dataclass
class NewTenant:
    name: Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=NUL_FREE)]
    timezone: Annotated[StrictStr, Field(max_length=64, pattern=NUL_FREE)] = "UTC"


@dataclass
class TenantInfo:
    id: int
    name: str
    timezone: str


@dataclass
class TenantResponse:
    success: bool
    data: TenantInfo


@dataclass
class NewUser:
    email: Annotated[StrictStr, Field(max_length=254, pattern=NUL_FREE)]
    password: Annotated[StrictStr, Field(min_length=8, max_length=1024)]
    tenant_id: Annotated[int, Field(ge=1, le=2**63 - 1)]


@dataclass
class UserInfo:
    id: int
    email: str


@dataclass
class UserResponse:
    success: bool
    data: UserInfo


@dataclass
class NewTenantToken:
    label: Annotated[StrictStr, Field(max_length=MAX_LABEL_CHARS, pattern=NUL_FREE)] = ""


@dataclass
class TenantToken:
    id: int
    token: str


@dataclass
class TenantTokenResponse:
    success: bool
    data: TenantToken


@blueprint.post("/api/platform/tenants")
@security_scheme([{"bearer": []}])
@document_request(NewTenant)
@document_response(TenantResponse, 201)
@document_errors(400, 401, 403, 413, 415, 503)
async def post_tenant() -> tuple[dict, int]:
    """Create a tenant (`timezone`: an IANA name, default UTC). Platform token only."""
    await authorize_platform()
    body = await json_body(NewTenant, '{"name": "...", "timezone"?: "Europe/Madrid"}')
    try:
        async with store_call():
            created = await create_tenant(services().pool, body.name, body.timezone)
    except InvalidTimezone as error:
        raise APIError(400, str(error)) from None
    return {"success": True, "data": created.__dict__}, 201


@blueprint.post("/api/platform/users")
@security_scheme([{"bearer": []}])
@document_request(NewUser)
@document_response(UserResponse, 201)
@document_errors(400, 401, 403, 404, 409, 413, 415, 503)
async def post_user() -> tuple[dict, int]:
    """Create an owner of `tenant_id` who logs in with this email and password; an email
    already taken gets 409. Platform token only."""
    await authorize_platform()
    body = await json_body(NewUser, '{"email": "...", "password": "...", "tenant_id": 1}')
    svc = services()
    async with store_call():
        if await get_tenant(svc.pool, body.tenant_id) is None:
            raise APIError(404, f"tenant {body.tenant_id} does not exist")
        async with svc.pool.acquire() as conn, conn.transaction():
            try:
                created = await create_user(conn, body.email, body.password)
            except AccountError as error:
                taken = "already exists" in str(error)
                raise APIError(409 if taken else 400, str(error)) from None
            await add_membership(conn, created.id, body.tenant_id)
    return {"success": True, "data": {"id": created.id, "email": created.email}}, 201


@blueprint.post("/api/platform/tenants/<int:tenant_id>/tokens")
@security_scheme([{"bearer": []}])
@document_request(NewTenantToken)
@document_response(TenantTokenResponse, 201)
@document_errors(400, 401, 403, 404, 413, 415, 503)
async def post_tenant_token(tenant_id: int) -> tuple[dict, int]:
    """Create a token that reads this tenant's numbers (shown once). Platform token only."""
    await authorize_platform()
    body = await json_body(NewTenantToken, '{"label"?: "..."}')
    svc = services()
    async with store_call():
        if await get_tenant(svc.pool, tenant_id) is None:
            raise APIError(404, f"tenant {tenant_id} does not exist")
        token, plaintext = await create_token(svc.pool, tenant_id, body.label)
    return {"success": True, "data": {"id": token.id, "token": plaintext}}, 201
