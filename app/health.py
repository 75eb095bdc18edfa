"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from quart import Blueprint, Response
from quart_schema import hide

from app.errors import error_response
from app.services import services

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
@hide
async def healthz() -> Response:
    return Response(b'{"success":true}', content_type="application/json")


@blueprint.get("/readyz")
@hide
async def readyz() -> Response:
    svc = services()
    problems = []
    try:
        async with asyncio.timeout(1):
            await svc.redis.ping()
    except Exception:
        problems.append("redis does not answer")
    try:
        async with asyncio.timeout(1):
            await svc.pool.fetchval("SELECT 1")
    except Exception:
        problems.append("postgres does not answer")
    if problems:
        return error_response(503, "; ".join(problems))
    return Response(b'{"success":true}', content_type="application/json")
