"""Property tests: the /track body validator, and the web's Redis command packing."""

from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.event_types import COUNTER_OF
from realtime.validation import MAX_METADATA_BYTES, InvalidEvent, parse_event


def _dumps(value) -> bytes:
    return json.dumps(value).encode()  # stdlib: integers of any size, as hostile bodies have


finite = st.floats(allow_nan=False, allow_infinity=False)


def _nested(inner):
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=20),
    _nested,
    max_leaves=12,
)
bodies = st.one_of(
    json_values.map(_dumps),
    st.fixed_dictionaries(
        {"tenant_id": st.one_of(st.integers(), st.booleans(), finite, st.text()),
         "event_type": st.one_of(st.sampled_from(list(COUNTER_OF)), st.text(max_size=12)),},
        optional={"metadata": json_values},
    ).map(_dumps),
    st.binary(max_size=64),
)


@settings(max_examples=400, deadline=None)
@given(bodies)
def test_validator_accepts_exactly_what_fits_the_schema(body):
    try:
        event, metadata = parse_event(body)
    except InvalidEvent as error:
        assert error.status in (400, 413) and error.message
        return
    document = json.loads(body)
    assert type(document["tenant_id"]) is int and 1 <= document["tenant_id"] < 2**63
    assert document["event_type"] in COUNTER_OF
    assert isinstance(document.get("metadata") or {}, dict)
    assert len(metadata) <= MAX_METADATA_BYTES
    assert orjson.loads(metadata) == (document.get("metadata") or {})
    if event.event_type == "time_on_page":
        seconds = document["metadata"]["seconds"]
        assert type(seconds) in (int, float) and 0 <= seconds <= 86_400


# -- the web process' Redis connections pack commands with hiredis -----------------------------

_ARGUMENT = st.one_of(
    st.text(), st.binary(), st.integers(min_value=-2**63, max_value=2**64),
    st.floats(allow_nan=False), st.memoryviews(st.binary()) if hasattr(st, "memoryviews")
    else st.binary().map(memoryview),
)


@given(name=st.sampled_from(["EVALSHA", "SET", b"XADD", "CONFIG GET", b"CLIENT LIST"]),
       args=st.lists(_ARGUMENT, max_size=20))
@settings(max_examples=300, deadline=None)
def test_packed_commands_are_byte_for_byte_redis_pys(name, args):
    from redis.asyncio import Connection

    from app.clients import PackedConnection

    expected = b"".join(bytes(chunk) for chunk in Connection().pack_command(name, *args))
    assert b"".join(PackedConnection().pack_command(name, *args)) == expected


def test_the_web_client_uses_the_hiredis_packer():
    from app.clients import PackedConnection, make_redis

    client = make_redis("redis://127.0.0.1:6379/0", timeout=0.4)
    assert client.connection_pool.connection_class is PackedConnection
