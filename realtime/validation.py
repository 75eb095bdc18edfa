"""The body `/track` accepts: validated into an event and its metadata, or refused with the
status and message a landing page's developer can act on."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from realtime.event_types import BY_NAME, NAMES, TIMED

MAX_BODY_BYTES = 16 * 1024
MAX_METADATA_BYTES = 4 * 1024
MAX_SECONDS_ON_PAGE = 86_400
MAX_TENANT_ID = 2**63 - 1

EventTypeName = Literal[NAMES]


class TrackRequest(BaseModel):
    """An event sent by a landing page."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    tenant_id: Annotated[int, Field(ge=1, le=MAX_TENANT_ID)]
    event_type: EventTypeName
    metadata: dict[str, Any] | None = None


_TRACK_ADAPTER = TypeAdapter(TrackRequest)


class InvalidEvent(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] in ("model_type", "model_attributes_type"):
        return "body must be a JSON object"
    if first["type"] == "dict_type":
        return f"{where} must be a JSON object"
    if first["type"] == "int_type":
        return f"{where} must be a whole number"
    if first["type"] == "literal_error":
        return f"{where} must be one of: {', '.join(NAMES)}"
    return f"{where}: {first['msg']}" if where else first["msg"]


def parse_event(body: bytes) -> tuple[TrackRequest, bytes]:
    """Validate a `/track` body; returns the event and its metadata as compact JSON."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidEvent(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        # orjson first: it is strict JSON (no NaN, UTF-8 only) and bounds nesting depth.
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidEvent(400, "body is not valid JSON") from None
    try:
        event = _TRACK_ADAPTER.validate_python(document)
    except ValidationError as error:
        raise InvalidEvent(400, _describe(error)) from None
    metadata = orjson.dumps(event.metadata or {})
    if len(metadata) > MAX_METADATA_BYTES:
        raise InvalidEvent(413, f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    if b"\\u0000" in metadata and _has_nul(event.metadata):
        # Postgres text and jsonb cannot hold U+0000.
        raise InvalidEvent(400, "metadata must not contain NUL (U+0000) characters")
    if BY_NAME[event.event_type].timed:
        seconds_on_page(event)
    return event, metadata


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def seconds_on_page(event: TrackRequest) -> float:
    seconds = (event.metadata or {}).get("seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or not 0 <= seconds <= MAX_SECONDS_ON_PAGE
    ):
        raise InvalidEvent(
            400, f"{TIMED.name} needs metadata.seconds, a number from 0 to {MAX_SECONDS_ON_PAGE}"
        )
    return float(seconds)
