"""POST /api/analytics/track: the public ingestion endpoint, and its CORS preflight.

`accept_event` is the whole endpoint. Two thin adapters call it: the Quart view below (which
also carries the OpenAPI documentation) and `app.http.fastpath`, which answers the same requests
straight from ASGI in the running app, because Quart's per-request machinery costs more than
everything the endpoint itself does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from pydantic import TypeAdapter
from quart import Blueprint, Response, request
from quart_schema import document_request, document_response

from app.http.errors import STORE_FAILURES, APIError, document_errors, store_failure
from app.http.headers import CORS
from app.http.openapi import Described
from app.http.tenancy import tenant_zone
from app.services import Services, services
from realtime.bots import is_bot
from realtime.event_types import TIMED
from realtime.ingest import Outcome, Sender
from realtime.privacy import client_address
from realtime.validation import (
    MAX_METADATA_DEPTH,
    MAX_SECONDS_ON_PAGE,
    InvalidEvent,
    TrackRequest,
    parse_event,
)

log = logging.getLogger(__name__)
blueprint = Blueprint("track", __name__)

TRACK_PATH = "/api/analytics/track"
ACCEPTED_TYPES = ("application/json", "text/plain")
SUCCESS = b'{"success":true}'
# An event answered 200 but not counted says why in this header; counted events carry none.
IGNORED_HEADER = "X-Analytics-Ignored"
IGNORED_BOT = "bot"
NUL_FREE = r"^[^\x00]*$"
METADATA_VALUE = "#/components/schemas/MetadataValue"


def track_body() -> Described:
    """The body as the OpenAPI document describes it: `TrackRequest`'s schema, plus what
    `parse_event` checks beyond its field types (time_on_page's `metadata.seconds`; no U+0000
    anywhere in the metadata, which Postgres cannot store)."""
    schema = TypeAdapter(TrackRequest).json_schema()
    schema["properties"]["metadata"] = {
        "title": "Metadata",
        "description": f"At most 4 KiB as JSON, nesting {MAX_METADATA_DEPTH} levels at most "
                       "(the metadata object is the first).",
        "type": ["object", "null"],
        "propertyNames": {"pattern": NUL_FREE},
        "additionalProperties": {"$ref": METADATA_VALUE},
    }
    schema["if"] = {"properties": {"event_type": {"const": TIMED.name}},
                    "required": ["event_type"]}
    seconds = {"type": "number", "minimum": 0, "maximum": MAX_SECONDS_ON_PAGE}
    schema["then"] = {
        "required": ["metadata"],
        "properties": {"metadata": {
            "type": "object", "required": ["seconds"], "properties": {"seconds": seconds},
        }},
    }
    # Without `type`: any JSON value, its strings and keys free of U+0000 at any depth.
    schema["$defs"] = {"MetadataValue": {
        "pattern": NUL_FREE,
        "propertyNames": {"pattern": NUL_FREE},
        "items": {"$ref": METADATA_VALUE},
        "additionalProperties": {"$ref": METADATA_VALUE},
    }}
    return Described(schema)


@dataclass
class Success:
    success: bool = True


@dataclass
class Preflight:
    """CORS preflight answered: any origin may POST events with a `Content-Type`."""

    access_control_allow_origin: str
    access_control_allow_methods: str
    access_control_allow_headers: str
    access_control_max_age: int


@dataclass(frozen=True)
class Delivery:
    """What the endpoint reads from a request, whichever adapter received it."""

    mimetype: str
    body: bytes
    user_agent: str
    referrer: str
    forwarded_for: list[str]  # every X-Forwarded-For line, in order
    remote_addr: str | None


async def accept_event(svc: Services, delivery: Delivery) -> str | None:
    """Validates and ingests one event; raises APIError with the status to answer. Returns
    None when the event counted, else why it did not (for `X-Analytics-Ignored`).

    Each outcome is counted for the tenant's ingest health in process (no Redis call here).
    """
    now = svc.clock()
    if delivery.mimetype not in ACCEPTED_TYPES:
        _count_invalid(svc, delivery.body, now)
        raise APIError(415, "send the event as application/json or text/plain")
    try:
        event, metadata = parse_event(delivery.body)
    except InvalidEvent as error:
        _count_invalid(svc, delivery.body, now)
        raise APIError(error.status, error.message) from None

    # The tenant first (contract): an unknown tenant is 404 whatever the user agent.
    timezone = await tenant_zone(svc, event.tenant_id, public=True)
    if is_bot(delivery.user_agent):
        svc.ingest_health.add(event.tenant_id, "bot", now)
        return IGNORED_BOT
    sender = Sender(
        address=client_address(delivery.remote_addr, delivery.forwarded_for,
                               svc.settings.trusted_proxy_hops),
        user_agent=delivery.user_agent,
        referrer=delivery.referrer,
    )
    try:  # within settings.track_deadline (the ingestor's batcher keeps it)
        result = await svc.ingestor.ingest(event, metadata, sender, timezone, now)
    except STORE_FAILURES as error:
        raise store_failure(error, writing=True) from None

    # Accepted and rate-limited events were counted for ingest health by the script.
    if result.outcome is Outcome.RATE_LIMITED:
        raise APIError(
            429,
            f"tenant {event.tenant_id} sent more than {svc.settings.rate_limit_per_minute} "
            "events in the last minute",
            headers={"Retry-After": str(result.retry_after)},
        )
    if result.outcome is Outcome.CLIENT_LIMITED:
        raise APIError(
            429,
            f"this address sent tenant {event.tenant_id} more than "
            f"{svc.settings.rate_limit_per_address_per_minute} events in the last minute "
            "(the limit per address)",
            headers={"Retry-After": str(result.retry_after)},
        )
    if result.outcome is Outcome.BUFFER_FULL:
        raise APIError(503, "the event buffer is full, try again later")
    return None


def _count_invalid(svc: Services, body: bytes, now: float) -> None:
    """Counts a refused body for the tenant it names, best-effort. Only tenants the
    in-process directory knows are counted, so made-up ids cannot create Redis keys."""
    try:
        tenant_id = orjson.loads(body).get("tenant_id")
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return
    if type(tenant_id) is int and svc.tenants.knows(tenant_id):
        svc.ingest_health.add(tenant_id, "invalid", now)


def ignored_headers(reason: str | None) -> dict[str, str]:
    """The headers a 200 carries for an event that did not count (readable cross-origin)."""
    if reason is None:
        return {}
    return {IGNORED_HEADER: reason, "Access-Control-Expose-Headers": IGNORED_HEADER}


@blueprint.after_request
async def cors(response: Response) -> Response:
    if "Access-Control-Allow-Origin" not in response.headers:
        response.headers.extend(CORS)
    return response


@blueprint.route(TRACK_PATH, methods=["OPTIONS"], provide_automatic_options=False)
@document_response(None, 204, Preflight)
async def preflight() -> Response:
    """CORS preflight: any origin may send events."""
    return Response(b"", status=204)


@blueprint.post(TRACK_PATH)
@document_request(track_body())
@document_response(Success)
@document_errors(400, 404, 408, 413, 415, 429, 503)
async def track() -> Response:
    """Record one event from a landing page.

    Public. Accepts `application/json` or `text/plain` (what `navigator.sendBeacon` sends).
    Answers 429 with `Retry-After` past the tenant's rate limit or the limit per client
    address, and 503 when the buffer is unreachable or full. An event answered 200 without
    being counted (a crawler's) carries `X-Analytics-Ignored` with the reason (`bot`).
    """
    reason = await accept_event(services(), Delivery(
        mimetype=request.mimetype,
        body=await request.get_data(cache=False),
        user_agent=request.headers.get("User-Agent", ""),
        referrer=request.headers.get("Referer", ""),
        forwarded_for=request.headers.getlist("X-Forwarded-For"),
        remote_addr=request.remote_addr,
    ))
    return Response(SUCCESS, content_type="application/json", headers=ignored_headers(reason))
