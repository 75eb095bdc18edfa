"""GET /api/analytics/{tenantId}/breakdown/{dimension}: visitors, events and leads per value
of a dimension over a period (JSON or CSV); GET .../export: a zip of CSVs, the series and
every breakdown of the period."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from quart import Blueprint, Quart, Response, request
from quart_schema import document_querystring, document_response, security_scheme
from werkzeug.routing import BaseConverter

from app.http.errors import APIError, document_errors
from app.http.openapi import ZipArchive
from app.http.query import (
    DAY_PATTERN,
    FORMATS,
    csv_response,
    output_format,
    period_asked,
    periods,
    to_csv,
)
from app.http.reads import json_response, read, read_rollups
from realtime.days import local_day
from rollups import dimensions
from rollups.breakdowns import breakdown, dimensions_seen, top
from rollups.periods import PERIODS, SERIES_COLUMNS, stats

blueprint = Blueprint("breakdowns", __name__)

DEFAULT_LIMIT, MAX_LIMIT = 10, 100
EXPORT_LIMIT = 100_000  # every value: at most 1,000 a day, summed over the period's days
RESULT_COLUMNS = ["value", "visitors", "events", "leads"]
STEP_NAMES = {"hour": "hour", "day": "date", "month": "month"}


class DimensionConverter(BaseConverter):
    """Any path segment (the handler answers 400 for an unknown one), documented as the
    dimensions there are."""

    openapi_pattern = (f"^({'|'.join(re.escape(n) for n in dimensions.BY_NAME)}"
                       f"|{re.escape(dimensions.META)}[^/]{{1,{dimensions.MAX_META_KEY}}})$")


def register_converters(app: Quart) -> None:
    app.url_map.converters["dimension"] = DimensionConverter


class BreakdownQuery(BaseModel):
    """The period as for /stats; `limit` values (1 to 100, default 10), the rest in `other`."""

    model_config = ConfigDict(populate_by_name=True)
    period: Literal[PERIODS] = "7d"  # type: ignore[valid-type]
    from_: str | SkipJsonSchema[None] = Field(None, alias="from", pattern=DAY_PATTERN)
    to: str | SkipJsonSchema[None] = Field(None, pattern=DAY_PATTERN)
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    format: Literal[FORMATS] = "json"  # type: ignore[valid-type]


class ExportQuery(BaseModel):
    """The period as for /stats."""

    model_config = ConfigDict(populate_by_name=True)
    period: Literal[PERIODS] = "7d"  # type: ignore[valid-type]
    from_: str | SkipJsonSchema[None] = Field(None, alias="from", pattern=DAY_PATTERN)
    to: str | SkipJsonSchema[None] = Field(None, pattern=DAY_PATTERN)


class ValueOut(BaseModel):
    value: str
    visitors: int
    events: int
    leads: int


class OtherOut(BaseModel):
    visitors: int
    events: int
    leads: int


class BreakdownData(BaseModel):
    dimension: str
    period: dict[str, str]
    results: list[ValueOut]
    other: OtherOut


class BreakdownResponse(BaseModel):
    """Values ordered by visitors, then events; `other` sums those past `limit`."""

    csv_alternative: ClassVar[bool] = True
    success: bool
    data: BreakdownData


def limit() -> int:
    text = request.args.get("limit", str(DEFAULT_LIMIT))
    try:
        value = int(text)
    except ValueError:
        raise APIError(400, f"`limit` must be a whole number from 1 to {MAX_LIMIT}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise APIError(400, f"`limit` must be from 1 to {MAX_LIMIT}, not {value}")
    return value


def period_document(first: dt.date, last: dt.date, timezone) -> dict[str, str]:
    return {"from": first.isoformat(), "to": last.isoformat(), "timezone": timezone.key}


@blueprint.get("/api/analytics/<int:tenant_id>/breakdown/<dimension:dimension>")
@security_scheme([{"bearer": []}])
@document_querystring(BreakdownQuery)
@document_response(BreakdownResponse)
@document_errors(400, 401, 403, 404, 503)
async def get_breakdown(tenant_id: int, dimension: str) -> Response:
    """Visitors, events and leads per value of a dimension over a period: `page`, `source`,
    `referrer`, `utm_source`, `utm_medium`, `utm_campaign`, `device`, `browser`, `os`,
    `country`, `product`, `button_location`, `currency` or `meta.<key>`. Visitors and leads
    are distinct within each day and summed over the days. `format=csv`: one row per value."""

    async def reader(svc, timezone, now):
        if not dimensions.known(dimension):
            raise APIError(400, f"unknown dimension {dimension[:60]!r}; one of: "
                                f"{', '.join(dimensions.BY_NAME)}, or meta.<key>")
        period, _ = periods(local_day(now, timezone))
        results, other = await breakdown(svc.pool, tenant_id, dimension, period.first,
                                         period.last, MAX_LIMIT)
        return period_document(period.first, period.last, timezone), results, other

    chosen, count = output_format(), limit()
    # Read at the largest limit, so one cached answer serves every limit.
    period, results, other = await read_rollups(
        tenant_id, ("breakdown", dimension, *period_asked()), reader,
        over_period=True)
    results, other = top(results, other, count)
    if chosen == "csv":
        return csv_response(to_csv(RESULT_COLUMNS, results),
                            f"{dimension}-{tenant_id}-{period['from']}-{period['to']}.csv")
    return json_response({"success": True, "data": {
        "dimension": dimension, "period": period, "results": results, "other": other}})


@blueprint.get("/api/analytics/<int:tenant_id>/export")
@security_scheme([{"bearer": []}])
@document_querystring(ExportQuery)
@document_response(ZipArchive)
@document_errors(400, 401, 403, 404, 503)
async def export(tenant_id: int) -> Response:
    """A zip of CSV files for the period: `series.csv` (as /stats with `format=csv`) and one
    `breakdown-<dimension>.csv` per dimension with values in it, every value."""

    async def reader(svc, timezone):
        period, previous = periods(local_day(svc.clock(), timezone))
        data = await stats(svc.pool, svc.scripts, svc.keys, tenant_id, timezone, period,
                           previous)
        files = {"series.csv": to_csv([STEP_NAMES[data["unit"]], *SERIES_COLUMNS],
                                      data["series"])}
        seen = await dimensions_seen(svc.pool, tenant_id, period.first, period.last)
        for name in seen:
            results, _ = await breakdown(svc.pool, tenant_id, name, period.first, period.last,
                                         EXPORT_LIMIT)
            files[f"breakdown-{safe_name(name)}.csv"] = to_csv(RESULT_COLUMNS, results)
        return data["period"], files

    period, files = await read(tenant_id, reader)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return Response(buffer.getvalue(), content_type="application/zip", headers={
        "Content-Disposition":
            f'attachment; filename="analytics-{tenant_id}-{period["from"]}-{period["to"]}.zip"'})


def safe_name(dimension: str) -> str:
    """A dimension as a file name: `meta.<key>` keys came from visitors."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in dimension)[:60]
