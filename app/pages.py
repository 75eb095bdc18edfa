"""What people see: the tracker script, the demo landing page and the owners' dashboard."""

from __future__ import annotations

import asyncio
import io
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
import segno
from quart import Blueprint, Response, current_app, render_template, request, url_for
from quart_schema import document_response, hide, security_scheme
from redis.exceptions import RedisError

from app.auth import Principal, authorize, require_owner
from app.errors import APIError, document_errors
from app.services import services
from app.tenants import get_tenant, tenants_by_ids
from rollups.recent import recent_events

blueprint = Blueprint("pages", __name__)

# No inline scripts or styles anywhere: every script and stylesheet is a file under /static.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
TRACKER_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
    # Short, because the URL customers paste never changes; stale copies serve while refreshing.
    "Cache-Control": "public, max-age=3600, stale-while-revalidate=86400",
}
QR_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
RECENT_LIMIT = 20
READ_DEADLINE = 5


@blueprint.after_request
async def content_security_policy(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    return response


async def owner_of(tenant_id: int) -> Principal:
    """Pages are for people: the logged-in owner of `tenant_id` (to /login otherwise)."""
    principal = await require_owner()
    if tenant_id not in principal.tenant_ids:
        raise APIError(403, f"your account does not cover tenant {tenant_id}")
    return principal


@blueprint.get("/t.js")
@hide
async def tracker() -> Response:
    response = await current_app.send_static_file("t.js")
    response.mimetype = "application/javascript"
    response.headers.update(TRACKER_HEADERS)
    return response


@blueprint.get("/demo/<int:tenant_id>")
@hide
async def demo(tenant_id: int) -> str:
    tenant = await get_tenant(services().pool, tenant_id)
    if tenant is None:
        raise APIError(404, f"tenant {tenant_id} does not exist")
    return await render_template("demo.html", tenant=tenant)


@blueprint.get("/dashboard")
@hide
async def dashboard() -> str:
    principal = await require_owner()
    tenants = await tenants_by_ids(services().pool, sorted(principal.tenant_ids))
    return await render_template("tenants.html", tenants=tenants)


@blueprint.get("/dashboard/<int:tenant_id>")
@hide
async def tenant_dashboard(tenant_id: int) -> str:
    await owner_of(tenant_id)
    tenant = await get_tenant(services().pool, tenant_id)
    if tenant is None:
        raise APIError(404, f"tenant {tenant_id} does not exist")
    return await render_template(
        "dashboard.html",
        tenant=tenant,
        snippet=snippet(tenant_id),
        landing_url=landing_url(tenant_id),
    )


@blueprint.get("/dashboard/<int:tenant_id>/qr.svg", defaults={"kind": "svg"})
@blueprint.get("/dashboard/<int:tenant_id>/qr.png", defaults={"kind": "png"})
@hide
async def qr_code(tenant_id: int, kind: str) -> Response:
    """The QR code of the tenant's landing page, marked `?src=qr`; `?download=1` saves it."""
    await owner_of(tenant_id)
    body = render_qr(landing_url(tenant_id), kind)
    headers = {"Cache-Control": "private, max-age=300"}
    if request.args.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="qr-tenant-{tenant_id}.{kind}"'
    return Response(body, content_type=QR_TYPES[kind], headers=headers)


@dataclass
class RecentEventOut:
    event_type: str
    ts: int
    metadata: dict[str, Any]
    page: str
    user_agent: str


@dataclass
class RecentEvents:
    success: bool
    events: list[RecentEventOut]


@blueprint.get("/api/analytics/<int:tenant_id>/events")
@security_scheme([{"bearer": []}])
@document_response(RecentEvents)
@document_errors(401, 403, 404, 503)
async def recent(tenant_id: int) -> dict:
    """The tenant's latest 20 events, newest first: the dashboard's feed.

    `page` is the Referer of the request that sent the event. Every field except `ts` came
    from a visitor: render it as text.
    """
    await authorize(tenant_id)
    svc = services()
    try:
        async with asyncio.timeout(READ_DEADLINE):
            events = await recent_events(svc.pool, svc.redis, svc.keys, tenant_id, RECENT_LIMIT)
    except (OSError, asyncpg.PostgresError, RedisError, TimeoutError):
        raise APIError(503, "the event store is unreachable, try again shortly") from None
    return {
        "success": True,
        "events": [
            {k: v for k, v in asdict(event).items() if k != "id"} for event in events
        ],
    }


def _external(endpoint: str, **values) -> str:
    # Production sits behind TLS that may end at a proxy: an http:// snippet would be blocked
    # as mixed content on the owner's https page.
    scheme = "https" if services().settings.production else request.scheme
    return url_for(endpoint, _external=True, _scheme=scheme, **values)


def landing_url(tenant_id: int) -> str:
    return _external("pages.demo", tenant_id=tenant_id) + "?src=qr"


def snippet(tenant_id: int) -> str:
    return f'<script defer src="{_external("pages.tracker")}" data-tenant="{tenant_id}"></script>'


def render_qr(url: str, kind: str) -> bytes:
    buffer = io.BytesIO()
    code = segno.make(url, error="m")
    if kind == "svg":
        code.save(buffer, kind="svg", scale=8, border=4, dark="#000", light="#fff",
                  title="QR code: " + url)
    else:
        code.save(buffer, kind="png", scale=10, border=4, dark="#000", light="#fff")
    return buffer.getvalue()
