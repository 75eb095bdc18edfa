"""The read path of every GET of numbers: authorize, resolve the tenant's timezone, run one
read within the deadline (503 when a store fails), answer JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar
from zoneinfo import ZoneInfo

import orjson
from quart import Response

from app.http.auth import authorize
from app.http.errors import store_call
from app.http.tenancy import tenant_zone
from app.services import Services, services

T = TypeVar("T")


async def read(tenant_id: int, reader: Callable[[Services, ZoneInfo], Awaitable[T]]) -> T:
    """The read path of every GET of numbers: authorize, resolve the tenant's timezone, run
    one read within the deadline (503 when a store fails)."""
    await authorize(tenant_id)
    svc = services()
    timezone = await tenant_zone(svc, tenant_id)
    async with store_call(svc.settings.read_deadline):
        return await reader(svc, timezone)


def json_response(document: dict) -> Response:
    return Response(orjson.dumps(document), content_type="application/json")
