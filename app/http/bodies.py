"""JSON bodies of the management and provisioning routes, in and out.

Only `application/json` is read: another site's form cannot send it without a CORS
preflight, which nothing here grants, so a JSON body is proof enough against CSRF.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import RootModel, TypeAdapter, ValidationError
from quart import request

from app.accounts.tokens import MAX_EXPIRY_DAYS
from app.http.errors import APIError
from app.services import services

T = TypeVar("T")


class JSONConfirm(RootModel[Any]):
    """Any JSON (it is not read), sent as application/json: for a DELETE from a session, the
    content type is the CSRF proof (a form or another site cannot send it)."""


async def json_body(model: type[T], example: str) -> T:
    """The body as `model`; 415 when it is not JSON, 400 (saying `example`) when it does not
    fit."""
    if request.mimetype != "application/json":
        raise APIError(415, "send the body as application/json")
    try:
        data = orjson.loads(await request.get_data())
        return TypeAdapter(model).validate_python(data)
    except (orjson.JSONDecodeError, ValidationError) as error:
        raise APIError(400, f"send {example}: {_first_problem(error)}") from None


def _first_problem(error: Exception) -> str:
    if isinstance(error, ValidationError):
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        return f"{where}: {problem['msg']}"
    return "the body is not valid JSON"


# The longest lifetime a token, share link or invite may be given, in days.
MAX_DAYS = MAX_EXPIRY_DAYS


@dataclass
class Revoked:
    id: int
    revoked: bool


@dataclass
class RevokedResponse:
    success: bool
    data: Revoked


def iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def now() -> dt.datetime:
    return dt.datetime.fromtimestamp(services().clock(), dt.UTC)
