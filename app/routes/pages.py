"""What people see: the tracker script, the demo landing page and the owners' dashboard."""

from __future__ import annotations

import io

import segno
from quart import Blueprint, Response, current_app, render_template, request
from quart_schema import hide

from app.accounts.tenants import require_tenant, tenants_by_ids
from app.http.auth import Principal, require_owner
from app.http.errors import APIError
from app.http.headers import PAGE_CSP, TRACKER_HEADERS
from app.http.urls import external_url
from app.services import services
from realtime.event_types import EVENT_TYPES, LIVE_LABELS, WEEK
from rollups.dimensions import DIMENSIONS
from rollups.periods import PERIOD_LABELS

blueprint = Blueprint("pages", __name__)

QR_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


@blueprint.after_request
async def content_security_policy(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
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
    tenant = await require_tenant(services().pool, tenant_id)
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
    tenant = await require_tenant(services().pool, tenant_id)
    return await render_template(
        "dashboard.html",
        tenant=tenant,
        snippet=snippet(tenant_id),
        landing_url=landing_url(tenant_id),
        live_stats=LIVE_LABELS,
        week_stats=[(t.counter, t.label) for t in WEEK],
        event_labels={t.name: t.event_label for t in EVENT_TYPES},
        breakdown_cards=[(d.name, d.label) for d in DIMENSIONS],
        periods=PERIOD_LABELS,
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


def landing_url(tenant_id: int) -> str:
    return external_url("pages.demo", tenant_id=tenant_id) + "?src=qr"


def snippet(tenant_id: int) -> str:
    tracker = external_url("pages.tracker")
    return f'<script defer src="{tracker}" data-tenant="{tenant_id}"></script>'


def render_qr(url: str, kind: str) -> bytes:
    buffer = io.BytesIO()
    code = segno.make(url, error="m")
    if kind == "svg":
        code.save(buffer, kind="svg", scale=8, border=4, dark="#000", light="#fff",
                  title="QR code: " + url)
    else:
        code.save(buffer, kind="png", scale=10, border=4, dark="#000", light="#fff")
    return buffer.getvalue()
