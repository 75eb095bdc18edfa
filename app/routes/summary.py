"""GET /api/analytics/{tenantId} and /today: the seed's summaries, read from the rollups.

Each answer's body is kept in the process until the next flush or the tenant's midnight
(app/http/reads.py): a repeated read sends the same bytes without asking Postgres."""

from __future__ import annotations

import dataclasses
from zoneinfo import ZoneInfo

import orjson
from quart import Blueprint, Response
from quart_schema import document_response, security_scheme

from app.http.errors import document_errors
from app.http.reads import encoded_json_response, read_rollups
from app.services import Services
from rollups.summaries import Summary, Today, summary, today_summary

blueprint = Blueprint("summary", __name__)

# The two answers kept whole in each process, by what follows the tenant id in the path:
# app/http/read_fastpath.py serves them from there ahead of Quart.
SUMMARY, TODAY = "summary", "today"
CACHED_READS = {"": SUMMARY, "/today": TODAY}

SummaryResponse = dataclasses.make_dataclass(
    "SummaryResponse", [("success", bool), ("data", Summary)])
TodayResponse = dataclasses.make_dataclass(
    "TodayResponse", [("success", bool, dataclasses.field(default=True))], bases=(Today,),
    frozen=True)


@blueprint.get("/api/analytics/<int:tenant_id>")
@security_scheme([{"bearer": []}])
@document_response(SummaryResponse)
@document_errors(401, 403, 404, 503)
async def get_summary(tenant_id: int) -> Response:
    """Today, the last 7 days and the week's totals, in the tenant's timezone."""
    async def body(svc: Services, timezone: ZoneInfo, now: float) -> bytes:
        result = await summary(svc.pool, svc.scripts, svc.keys, tenant_id, timezone, now)
        return orjson.dumps({"success": True, "data": dataclasses.asdict(result)})

    return encoded_json_response(await read_rollups(tenant_id, SUMMARY, body))


@blueprint.get("/api/analytics/<int:tenant_id>/today")
@security_scheme([{"bearer": []}])
@document_response(TodayResponse)
@document_errors(401, 403, 404, 503)
async def get_today(tenant_id: int) -> Response:
    """Today's visitors, WhatsApp clicks, QR scans and product clicks."""
    async def body(svc: Services, timezone: ZoneInfo, now: float) -> bytes:
        result = await today_summary(svc.pool, tenant_id, timezone, now)
        return orjson.dumps({"success": True, **dataclasses.asdict(result)})

    return encoded_json_response(await read_rollups(tenant_id, TODAY, body))
