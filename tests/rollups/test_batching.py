"""Property test: rollup arithmetic is the same under any split of events into batches and
flushes, across a local midnight."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.accounts.tenants import create_tenant
from realtime.event_types import COUNTER_OF
from realtime.ingest import Outcome, Sender
from realtime.validation import parse_event
from rollups.flush import flush_all

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
