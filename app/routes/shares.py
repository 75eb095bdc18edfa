"""Share links: owners create, list and revoke them; `/s/<token>` is the read-only page.

The page shows one tenant's live numbers and nothing else: no owner, no management, no feed
of visitors' metadata. Its socket presents the same token (`?share=`), so revoking the link
closes an open page within `live_reauth_interval`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field
from quart import Blueprint, Response, render_template
from quart_schema import document_request, document_response, hide, security_scheme

from app.accounts.revocation import revoke_share_everywhere
from app.accounts.shares import Share, create_share, list_shares, verify_share
from app.accounts.tenants import require_tenant
from app.http.auth import authorize_owner
from app.http.bodies import MAX_DAYS, JSONConfirm, Revoked, RevokedResponse, iso, json_body, now
from app.http.errors import APIError, document_errors, store_call
from app.http.headers import PAGE_CSP
from app.http.urls import external_url
from app.services import services
from realtime.event_types import LIVE_LABELS

blueprint = Blueprint("shares", __name__)


@dataclass
class NewShare:
    expires_in_days: Annotated[int | None, Field(ge=1, le=MAX_DAYS)] = None


@dataclass
class ShareInfo:
    id: int
    created_at: str
    expires_at: str | None
    revoked_at: str | None


@dataclass
class CreatedShare(ShareInfo):
    url: str  # the link's secret is in it: shown this once


@dataclass
class CreatedShareResponse:
    success: bool
    data: CreatedShare


@dataclass
class ShareList:
    shares: list[ShareInfo]


@dataclass
class ShareListResponse:
    success: bool
    data: ShareList


def share_info(share: Share) -> dict:
    return {"id": share.id, "created_at": iso(share.created_at),
            "expires_at": iso(share.expires_at), "revoked_at": iso(share.revoked_at)}


@blueprint.get("/api/analytics/<int:tenant_id>/shares")
@security_scheme([{"session": []}])
@document_response(ShareListResponse)
@document_errors(401, 403, 404, 503)
async def get_shares(tenant_id: int) -> dict:
    """The tenant's share links (without their URLs, which only their creation shows)."""
    await authorize_owner(tenant_id)
    async with store_call():
        shares = await list_shares(services().pool, tenant_id)
    return {"success": True, "data": {"shares": [share_info(s) for s in shares]}}


@blueprint.post("/api/analytics/<int:tenant_id>/shares")
@security_scheme([{"session": []}])
@document_request(NewShare)
@document_response(CreatedShareResponse, 201)
@document_errors(400, 401, 403, 404, 413, 415, 503)
async def post_share(tenant_id: int) -> tuple[dict, int]:
    """Create a share link: `url` opens a read-only dashboard with live numbers, no login.
    Owners only (JSON body)."""
    await authorize_owner(tenant_id)
    body = await json_body(NewShare, '{"expires_in_days"?: 1..3650}')
    expires_at = None
    if body.expires_in_days is not None:
        expires_at = now() + dt.timedelta(days=body.expires_in_days)
    async with store_call():
        share, token = await create_share(services().pool, tenant_id, expires_at)
    url = external_url("shares.shared_page", token=token)
    return {"success": True, "data": {**share_info(share), "url": url}}, 201


@blueprint.delete("/api/analytics/<int:tenant_id>/shares/<int:share_id>")
@security_scheme([{"session": []}])
@document_request(JSONConfirm)
@document_response(RevokedResponse)
@document_errors(400, 401, 403, 404, 503)
async def delete_share(tenant_id: int, share_id: int) -> dict:
    """End a share link at once: its page answers 404 and open pages lose their numbers."""
    await authorize_owner(tenant_id)
    async with store_call():
        svc = services()
        done = await revoke_share_everywhere(svc.pool, svc.redis, svc.keys, tenant_id, share_id)
    if not done:
        raise APIError(404, f"tenant {tenant_id} has no active share link {share_id}")
    return {"success": True, "data": Revoked(share_id, True).__dict__}


@blueprint.get("/s/<token>")
@hide
async def shared_page(token: str) -> Response:
    async with store_call():
        share = await verify_share(services().pool, token, now())
        if share is None:
            raise APIError(404, "this share link does not exist or has ended")
        tenant = await require_tenant(services().pool, share.tenant_id)
    page = await render_template(
        "shared.html", tenant=tenant, token=token,
        live_stats=LIVE_LABELS,
    )
    return Response(page, content_type="text/html", headers={
        "Content-Security-Policy": PAGE_CSP,
        # The token is the credential: kept out of shared caches (and, by the page's
        # referrer meta tag, out of other sites' Referer).
        "Cache-Control": "no-store",
    })
