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
# Levels of metadata, itself the first: real metadata needs a few. Bounded well below what
# orjson can write back (254 levels, with the envelopes of the feed and the live frames
# around it), so that nothing accepted can fail later.
MAX_METADATA_DEPTH = 32

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
        # orjson first: it is strict JSON (no NaN, UTF-8 only) and stops at 1024 levels.
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if str(error).startswith("depth limit exceeded"):
            raise InvalidEvent(400, TOO_DEEP) from None
        raise InvalidEvent(400, "body is not valid JSON") from None
    # The body is one level above its metadata. Counting brackets is a bound that costs
    # nothing on the usual flat event; only a body with many of them is walked.
    if (body.count(b"{") + body.count(b"[") > MAX_METADATA_DEPTH + 1
            and _deeper_than(document, MAX_METADATA_DEPTH + 1)):
        raise InvalidEvent(400, TOO_DEEP)
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


TOO_DEEP = f"the body nests too deep: metadata may nest {MAX_METADATA_DEPTH} levels at most"


def _deeper_than(document: Any, levels: int) -> bool:
    """Whether objects and arrays nest more than `levels` deep (the document is level 1).
    A loop, not recursion: orjson hands over up to 1024 levels."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > levels:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


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
