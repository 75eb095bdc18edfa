"""What the GETs of numbers share in their query: the period and the answer's format."""

from __future__ import annotations

import csv
import datetime as dt
import io

from quart import Response, request

from app.http.errors import APIError
from rollups.periods import Period, PeriodError, resolve

FORMATS = ("json", "csv")
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


def output_format() -> str:
    chosen = request.args.get("format", "json")
    if chosen not in FORMATS:
        raise APIError(400, f"unknown format {chosen[:40]!r}; one of: {', '.join(FORMATS)}")
    return chosen


def period_asked() -> tuple[str | None, str | None, str | None]:
    """The query's period as asked (`period`, `from`, `to`), before it is resolved: what an
    answer over it is cached under, with the tenant's local day (app/http/reads.py)."""
    return request.args.get("period"), request.args.get("from"), request.args.get("to")


def periods(today: dt.date) -> tuple[Period, Period]:
    """The query's period and the one before it; 400 with the reason when it names none."""
    try:
        return resolve(*period_asked(), today)
    except PeriodError as error:
        raise APIError(400, str(error)) from None


def csv_response(text: str, filename: str) -> Response:
    return Response(text, content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# A cell a spreadsheet would take for a formula; values came from visitors (CWE-1236).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def to_csv(fields: list[str], rows: list[dict]) -> str:
    """A header row, then one row per dict (keys as in `fields`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    writer.writerows([cell(row.get(field)) for field in fields] for row in rows)
    return out.getvalue()
