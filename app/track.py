"""POST /api/analytics/track: the public ingestion endpoint, and its CORS preflight."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from quart import Blueprint, Response, request
from quart_schema import document_request, document_response
from redis.exceptions import RedisError

from app.errors import APIError
from app.services import services
from app.tenants import DirectoryUnavailable
from realtime.bots import is_bot
from realtime.events import InvalidEvent, TrackRequest, parse_event
from realtime.ingest import Outcome, Sender
from realtime.privacy import client_address

log = logging.getLogger(__name__)
blueprint = Blueprint("track", __name__)

ACCEPTED_TYPES = ("application/json", "text/plain")
REDIS_DEADLINE = 0.9
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}
SUCCESS = b'{"success":true}'
TRACK_PATH = "/api/analytics/track"


@dataclass
class Success:
    success: bool = True


def accepted() -> Response:
    return Response(SUCCESS, content_type="application/json", headers=CORS)


@blueprint.after_request
async def cors(response: Response) -> Response:
    if "Access-Control-Allow-Origin" not in response.headers:  # errors; `accepted` has them
        response.headers.extend(CORS)
    return response


@blueprint.route(TRACK_PATH, methods=["OPTIONS"], provide_automatic_options=False)
async def preflight() -> Response:
    """CORS preflight: any origin may send events."""
    return Response(b"", status=204)


@blueprint.post(TRACK_PATH)
@document_request(TrackRequest)
@document_response(Success)
async def track() -> Response:
    """Record one event from a landing page.

    Public. Accepts `application/json` or `text/plain` (what `navigator.sendBeacon` sends).
    Answers 429 with `Retry-After` past the tenant's rate limit, and 503 when the buffer is
    unreachable or full.
    """
    if request.mimetype not in ACCEPTED_TYPES:
        raise APIError(415, "send the event as application/json or text/plain")
    body = await request.get_data(cache=False)
    try:
        event, metadata = parse_event(body)
    except InvalidEvent as error:
        raise APIError(error.status, error.message) from None

    user_agent = request.headers.get("User-Agent", "")
    if is_bot(user_agent):
        return accepted()

    svc = services()
    try:
        timezone = await svc.tenants.timezone(event.tenant_id)
    except DirectoryUnavailable:
        raise APIError(503, "the service is starting, try again shortly") from None
    if timezone is None:
        raise APIError(404, f"tenant {event.tenant_id} does not exist")

    sender = Sender(
        address=client_address(
            request.remote_addr,
            request.headers.get("X-Forwarded-For"),
            svc.settings.trusted_proxy_hops,
        ),
        user_agent=user_agent,
        referrer=request.headers.get("Referer", ""),
    )
    try:
        async with asyncio.timeout(REDIS_DEADLINE):
            result = await svc.ingestor.ingest(event, metadata, sender, timezone, svc.clock())
    except (RedisError, OSError, TimeoutError) as error:
        log.warning("event buffer unreachable: %s", type(error).__name__)
        raise APIError(503, "the event buffer is unreachable, try again shortly") from None

    if result.outcome is Outcome.RATE_LIMITED:
        raise APIError(
            429,
            f"tenant {event.tenant_id} sent more than {svc.settings.rate_limit_per_minute} "
            "events in the last minute",
            headers={"Retry-After": str(result.retry_after)},
        )
    if result.outcome is Outcome.BUFFER_FULL:
        raise APIError(503, "the event buffer is full, try again later")
    return accepted()
