"""GET /api/analytics/{tenantId}/health: what became of the tenant's events, minute by minute."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from quart import Blueprint
from quart_schema import document_response, security_scheme

from app.http.auth import authorize
from app.http.errors import document_errors, store_call
from app.http.tenancy import tenant_zone
from app.services import services
from realtime.ingest_health import OUTCOMES, Minute, read_health

blueprint = Blueprint("ingest_health", __name__)


@dataclass
class Totals:
    accepted: int
    bot: int
    rate_limited: int
    invalid: int


@dataclass
class Health:
    minutes: list[Minute]
    totals: Totals


@dataclass
class HealthResponse:
    success: bool
    data: Health


@blueprint.get("/api/analytics/<int:tenant_id>/health")
@security_scheme([{"bearer": []}, {"session": []}])
@document_response(HealthResponse)
@document_errors(401, 403, 404, 503)
async def get_health(tenant_id: int) -> dict:
    """The last 60 minutes of `/track` answers for this tenant, oldest first: events
    `accepted`, ignored as from a `bot`, refused as `rate_limited` (429), and `invalid`
    (400/413/415 for a body that named this tenant). Counts reach it within about a second."""
    await authorize(tenant_id)
    svc = services()
    await tenant_zone(svc, tenant_id)
    async with store_call(svc.settings.read_deadline):
        # This process' counts of the last second first, so an owner sees their own test.
        await svc.ingest_health.flush(svc.redis)
        minutes = await read_health(svc.redis, svc.keys, tenant_id, svc.clock())
    totals = {o: sum(getattr(m, o) for m in minutes) for o in OUTCOMES}
    return {"success": True, "data": {
        "minutes": [dataclasses.asdict(m) for m in minutes], "totals": totals}}
