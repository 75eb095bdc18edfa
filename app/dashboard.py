"""The owners' dashboard page (a placeholder until the dashboard itself lands)."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import hide

from app.auth import require_owner

blueprint = Blueprint("dashboard", __name__)


@blueprint.get("/dashboard")
@hide
async def dashboard() -> Response:
    principal = await require_owner()
    tenants = ", ".join(str(t) for t in sorted(principal.tenant_ids)) or "none yet"
    return Response(f"<!doctype html><title>Dashboard</title><p>Your tenants: {tenants}</p>",
                    content_type="text/html")
