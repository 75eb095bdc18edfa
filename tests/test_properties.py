"""Property tests: the /track body validator, and rollup arithmetic under any batching."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from zoneinfo import ZoneInfo

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from app.accounts.tenants import create_tenant
from realtime.event_types import COUNTER_OF
from realtime.validation import MAX_METADATA_BYTES, InvalidEvent, parse_event
from realtime.ingest import Outcome, Sender
from rollups.flush import flush_all

def _dumps(value) -> bytes:
    return json.dumps(value).encode()  # stdlib: integers of any size, as hostile bodies have


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    json_values.map(_dumps),
    st.fixed_dictionaries(
        {"tenant_id": st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), st.text()),
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


events = st.lists(
    st.tuples(st.sampled_from(list(COUNTER_OF)), st.integers(0, 5000), st.integers(0, 6),
              st.integers(0, 2 * 86_400 - 1)),
    min_size=1, max_size=30,
)


async def test_any_split_into_batches_gives_the_same_totals(app, pool):
    loop = asyncio.get_running_loop()
    svc = app.extensions["analytics"]
    zone = ZoneInfo("America/Mexico_City")
    start = dt.datetime(2026, 10, 1, tzinfo=zone).timestamp()

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(events, st.integers(1, 7), st.integers(1, 4))
    def check(sent, batch_size, flushes):
        tenant = run(create_tenant(pool, "Property", zone.key))
        expected = Counter()
        for i, (kind, ms, visitor, offset) in enumerate(sent):
            body = {"tenant_id": tenant.id, "event_type": kind}
            if kind == "time_on_page":
                body["metadata"] = {"seconds": ms / 1000}
            event, metadata = parse_event(orjson.dumps(body))
            sender = Sender(f"192.0.2.{visitor}", "Mozilla/5.0", "")
            result = run(svc.ingestor.ingest(event, metadata, sender, zone, start + offset))
            assert result.outcome is Outcome.ACCEPTED
            day = dt.datetime.fromtimestamp(start + offset, zone).date()
            expected[(day, "events")] += 1
            expected[(day, COUNTER_OF[kind])] += 1
            expected[(day, "time_on_page_ms")] += ms if kind == "time_on_page" else 0
            if i % flushes == 0:
                run(flush_all(svc.redis, svc.pool, svc.keys, svc.scripts, batch_size=batch_size))
        run(flush_all(svc.redis, svc.pool, svc.keys, svc.scripts, batch_size=batch_size))
        rows = run(pool.fetch("SELECT * FROM daily_rollups WHERE tenant_id = $1", tenant.id))
        got = Counter({(row["day"], column): row[column] for row in rows
                       for column in ("events", *COUNTER_OF.values(), "time_on_page_ms")})
        assert +got == +expected

    await asyncio.to_thread(check)


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
