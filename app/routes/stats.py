"""GET /api/analytics/{tenantId}/stats: totals over a period of the tenant's days, the same
totals for the period just before, and a series by hour, day or month (JSON, or CSV)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from quart import Blueprint, Response
from quart_schema import document_querystring, document_response, security_scheme

from app.http.errors import document_errors
from app.http.query import (
    DAY_PATTERN,
    FORMATS,
    csv_response,
    output_format,
    period_asked,
    periods,
    to_csv,
)
from app.http.reads import json_response, read_rollups
from realtime.days import local_day
from rollups.periods import PERIODS, SERIES_COLUMNS, stats

blueprint = Blueprint("stats", __name__)

class StatsQuery(BaseModel):
    """`from` and `to` go with `period=custom` only (inclusive, at most 400 days)."""

    model_config = ConfigDict(populate_by_name=True)
    period: Literal[PERIODS] = "7d"  # type: ignore[valid-type]
    from_: str | SkipJsonSchema[None] = Field(None, alias="from", pattern=DAY_PATTERN)
    to: str | SkipJsonSchema[None] = Field(None, pattern=DAY_PATTERN)
    format: Literal[FORMATS] = "json"  # type: ignore[valid-type]


class PeriodOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    timezone: str


class StatsData(BaseModel):
    period: PeriodOut
    totals: dict[str, float]
    previous: dict[str, float]
    series: list[dict[str, str | int]]


class StatsResponse(BaseModel):
    """Totals, the period before, and the series; with `format=csv`, the series as CSV."""

    csv_alternative: ClassVar[bool] = True
    success: bool
    data: StatsData


def series_csv(data: dict) -> str:
    step = {"hour": "hour", "day": "date", "month": "month"}[data["unit"]]
    return to_csv([step, *SERIES_COLUMNS], data["series"])


@blueprint.get("/api/analytics/<int:tenant_id>/stats")
@security_scheme([{"bearer": []}])
@document_querystring(StatsQuery)
@document_response(StatsResponse)
@document_errors(400, 401, 403, 404, 503)
async def get_stats(tenant_id: int) -> Response:
    """Totals over a period of the tenant's days (`visitors` and `leads` are unions over its
    days), the same totals for the period of the same length just before (for `12mo`, the 12
    months before), and a series: by hour for `today` and `yesterday`, by month for `12mo`,
    else by day. `format=csv` answers the series as CSV."""
    chosen = output_format()

    async def reader(svc, timezone, now):
        period, previous = periods(local_day(now, timezone))
        return await stats(svc.pool, svc.scripts, svc.keys, tenant_id, timezone, period,
                           previous)

    data = await read_rollups(tenant_id, ("stats", *period_asked()), reader,
                              over_period=True)
    if chosen == "csv":
        return csv_response(series_csv(data),
                            f"stats-{tenant_id}-{data['period']['from']}-{data['period']['to']}.csv")
    return json_response({"success": True, "data": {
        name: value for name, value in data.items() if name != "unit"}})
