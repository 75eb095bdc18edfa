"""Liveness and readiness probes.

`/readyz` answers its status code to anyone (a load balancer needs nothing more); what is
wrong, and how many events wait in the buffer, only to the host itself or a valid API token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import orjson
from quart import Blueprint, Response, request
from quart_schema import hide

from app.http.auth import authenticate
from app.http.errors import APIError, error_response
from app.services import services
from realtime.persistence import UNKNOWN, persistence_warnings
from realtime.privacy import client_address
from realtime.stream import buffer_depths

# What Quart reports when the server gave no client address (a Unix socket: only local
# processes can connect).
NO_ADDRESS = "<local>"

blueprint = Blueprint("health", __name__)
log = logging.getLogger("analytics.health")


@blueprint.get("/healthz")
@hide
async def healthz() -> Response:
    return Response(b'{"success":true}', content_type="application/json")


@blueprint.get("/readyz")
@hide
async def readyz() -> Response:
    svc = services()
    problems = []
    depths = []
    timeout = svc.settings.ready_probe_timeout
    try:
        async with asyncio.timeout(timeout):
            await svc.redis.ping()
            depths = await buffer_depths(svc.redis, svc.keys)
    except Exception:
        problems.append("redis does not answer")
    bound = svc.settings.stream_max_events
    if depths and max(depths) >= bound:
        problems.append(f"the event buffer is full ({max(depths)} of {bound} events in a shard): "
                        "the scheduler cannot store events, is Postgres down?")
    try:
        async with asyncio.timeout(timeout):
            await svc.pool.fetchval("SELECT 1")
    except Exception:
        problems.append("postgres does not answer")
    if not await _may_see_details():
        if problems:
            return error_response(503, "not ready")
        return Response(b'{"success":true}', content_type="application/json")
    if problems:
        return error_response(503, "; ".join(problems))
    return Response(orjson.dumps({"success": True, "buffered_events": sum(depths),
                                  "buffer_bound_per_shard": bound,
                                  "warnings": await redis_warnings(svc)}),
                    content_type="application/json")


async def redis_warnings(svc) -> list[str]:
    """In production, whether Redis would lose accepted events on a restart. A warning, not
    a 503: a failing readiness probe takes the process out of the load balancer, and serving
    without persistence is better than not serving. Logged when it changes, not per probe."""
    if not svc.settings.production:
        return []
    try:
        async with asyncio.timeout(svc.settings.ready_probe_timeout):
            warnings = await persistence_warnings(svc.redis)
    except Exception as error:
        warnings = [UNKNOWN.format(error=type(error).__name__)]
    if tuple(warnings) != svc.redis_warnings_logged:
        for warning in warnings:
            log.warning("readiness: %s", warning)
        svc.redis_warnings_logged = tuple(warnings)
    return warnings


async def _may_see_details() -> bool:
    """The host itself (behind a trusted proxy: the client the proxy names), or a valid API
    token."""
    address = client_address(request.remote_addr, request.headers.getlist("X-Forwarded-For"),
                             services().settings.trusted_proxy_hops)
    if address == NO_ADDRESS:
        return True
    try:
        ip = ipaddress.ip_address(address)
        if ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped and ip.ipv4_mapped.is_loopback):
            return True
    except ValueError:
        pass
    if "Authorization" not in request.headers:
        return False
    try:
        principal = await authenticate()
    except APIError:  # Postgres cannot tell: no details, the status code says enough
        return False
    return principal is not None and principal.kind == "token"
