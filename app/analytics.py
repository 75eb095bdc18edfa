"""GET /api/analytics/{tenantId} and /today: the dashboard summaries, read from the rollups."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from quart import Blueprint, Response
from quart_schema import document_response, security_scheme
from redis.exceptions import RedisError

from app.auth import authorize
from app.errors import APIError, document_errors
from app.services import Services, services
from app.tenants import DirectoryUnavailable
from rollups.read import Summary, Today, summary, today_summary

T = TypeVar("T")
blueprint = Blueprint("analytics", __name__)

READ_DEADLINE = 5


@dataclasses.dataclass
class SummaryResponse:
    success: bool
    data: Summary


@dataclasses.dataclass(frozen=True)
class TodayResponse(Today):
    success: bool = True


async def _read(tenant_id: int, reader: Callable[[Services, ZoneInfo], Awaitable[T]]) -> T:
    """Authorizes, resolves the tenant's timezone and runs one rollup read, as both GETs do."""
    await authorize(tenant_id)
    svc = services()
    try:
        timezone = await svc.tenants.timezone(tenant_id)
    except DirectoryUnavailable:
        raise APIError(503, "the database is unreachable, try again shortly") from None
    if timezone is None:
        raise APIError(404, f"tenant {tenant_id} does not exist")
    try:
        async with asyncio.timeout(READ_DEADLINE):
            return await reader(svc, timezone)
    except (OSError, asyncpg.PostgresError, RedisError, TimeoutError):
        raise APIError(503, "the analytics store is unreachable, try again shortly") from None


def _json(document: dict) -> Response:
    return Response(orjson.dumps(document), content_type="application/json")


@blueprint.get("/api/analytics/<int:tenant_id>")
@security_scheme([{"bearer": []}])
@document_response(SummaryResponse)
@document_errors(401, 403, 404, 503)
async def get_summary(tenant_id: int) -> Response:
    """Today, the last 7 days and the week's totals, in the tenant's timezone."""
    result = await _read(tenant_id, lambda svc, timezone: summary(
        svc.pool, svc.scripts, svc.keys, tenant_id, timezone, svc.clock()))
    return _json({"success": True, "data": dataclasses.asdict(result)})


@blueprint.get("/api/analytics/<int:tenant_id>/today")
@security_scheme([{"bearer": []}])
@document_response(TodayResponse)
@document_errors(401, 403, 404, 503)
async def get_today(tenant_id: int) -> Response:
    """Today's visitors, WhatsApp clicks, QR scans and product clicks."""
    result = await _read(tenant_id, lambda svc, timezone: today_summary(
        svc.pool, tenant_id, timezone, svc.clock()))
    return _json({"success": True, **dataclasses.asdict(result)})
