"""Ingest health: each /track outcome counted for its tenant and minute; bots are answered
with X-Analytics-Ignored after the tenant check."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.support.apps import serving_app
from tests.support.http import track

BOT = {"User-Agent": "curl/8.5.0"}


async def health(client, tenant_id: int, auth_headers: dict) -> dict:
    response = await client.get(f"/api/analytics/{tenant_id}/health", headers=auth_headers)
    assert response.status_code == 200, await response.get_data()
    return (await response.get_json())["data"]


async def test_a_bot_a_429_and_a_400_are_counted_in_their_minute(settings, tenant, auth_headers):
    async with serving_app(settings, rate_limit_per_minute=2) as app:
        from tests.support.apps import pin_clock

        clock = pin_clock(app)
        clock.now = 1_780_000_000.0 - 1_780_000_000.0 % 60 + 30  # mid-minute
        client = app.test_client()
        assert (await track(client, tenant.id)).status_code == 200
        assert (await track(client, tenant.id)).status_code == 200
        assert (await track(client, tenant.id)).status_code == 429
        bot = await track(client, tenant.id, headers=BOT)
        assert bot.status_code == 200 and bot.headers["X-Analytics-Ignored"] == "bot"
        bad = await track(client, tenant.id, body=orjson.dumps(
            {"tenant_id": tenant.id, "event_type": "no_such_type"}))
        assert bad.status_code == 400
        assert (await track(client, tenant.id, content_type="text/csv")).status_code == 415

        clock.now += 60  # the next minute: one more accepted (the rate window rolled on)
        assert (await track(client, tenant.id, "click_call")).status_code == 200

        data = await health(client, tenant.id, auth_headers)
        assert len(data["minutes"]) == 60
        *_, before, last = data["minutes"]
        assert before == {"minute": _minute(clock.now - 60), "accepted": 2, "bot": 1,
                          "rate_limited": 1, "invalid": 2}
        assert last == {"minute": _minute(clock.now), "accepted": 1, "bot": 0,
                        "rate_limited": 0, "invalid": 0}
        assert data["totals"] == {"accepted": 3, "bot": 1, "rate_limited": 1, "invalid": 2}


def _minute(now: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(now // 60 * 60, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


async def test_counts_reach_redis_without_a_read(settings, tenant, redis, keys):
    """An accepted event is counted by the script that accepts it; what never reaches Redis
    (a crawler's event) is added by the background flush of the in-process counts."""
    async with serving_app(settings, ingest_health_flush=0.05) as app:
        from tests.support.apps import pin_clock

        clock = pin_clock(app)
        clock.now = clock.now - clock.now % 60 + 30  # mid-minute: one key for both counts
        client = app.test_client()
        key = keys.ingest_health(tenant.id, int(clock.now // 60))
        assert (await track(client, tenant.id)).status_code == 200
        assert int(await redis.hget(key, "accepted")) == 1  # no flush needed
        assert 0 < await redis.ttl(key) <= 3600 + 300
        assert (await track(client, tenant.id, headers=BOT)).status_code == 200
        async with asyncio.timeout(10):
            while await redis.hget(key, "bot") is None:
                await asyncio.sleep(0.05)
        assert 0 < await redis.ttl(key) <= 3600 + 300


async def test_an_unknown_tenant_is_404_even_for_a_bot(client):
    response = await track(client, 987_654_321, headers=BOT)
    assert response.status_code == 404
    assert "X-Analytics-Ignored" not in response.headers


async def test_counted_events_carry_no_ignored_header(client, tenant):
    response = await track(client, tenant.id)
    assert response.status_code == 200 and "X-Analytics-Ignored" not in response.headers


async def test_both_adapters_say_bot(app, client, tenant):
    """The ASGI fast path (what the test client reaches) and the Quart view alike."""
    fast = app.asgi_app
    try:
        for asgi in (fast, fast.inner):
            app.asgi_app = asgi
            response = await track(client, tenant.id, headers=BOT)
            assert response.status_code == 200
            assert await response.get_json() == {"success": True}
            assert response.headers["X-Analytics-Ignored"] == "bot"
            assert response.headers["Access-Control-Expose-Headers"] == "X-Analytics-Ignored"
    finally:
        app.asgi_app = fast


async def test_counts_survive_a_failed_flush_for_an_hour_only(keys, redis):
    """Redis away: the counts wait for the next flush, but not past the hour they are for."""
    from app.clients import make_redis
    from realtime.ingest_health import IngestTally

    tally = IngestTally(keys)
    now = 1_780_000_000.0
    tally.add(7, "accepted", now - 3600)  # a minute the panel no longer shows
    tally.add(7, "accepted", now)
    tally.add(7, "bot", now)
    away = make_redis("redis://127.0.0.1:1/0", timeout=0.2)
    try:
        from app.clients import STORE_ERRORS

        with pytest.raises(STORE_ERRORS):
            await tally.flush(away)
    finally:
        await away.aclose()
    minute = int(now // 60)
    assert dict(tally.pending) == {(7, minute, "accepted"): 1, (7, minute, "bot"): 1}
    assert await tally.flush(redis) == 2
    assert await redis.hgetall(keys.ingest_health(7, minute)) in (
        {b"accepted": b"1", b"bot": b"1"}, {"accepted": "1", "bot": "1"})
    assert tally.pending == {}


async def test_counts_of_the_last_second_are_flushed_at_shutdown(settings, tenant, redis, keys):
    async with serving_app(settings, ingest_health_flush=3600) as app:  # no periodic flush
        client = app.test_client()
        now = app.extensions["analytics"].clock()
        assert (await track(client, tenant.id, headers=BOT)).status_code == 200
        key = keys.ingest_health(tenant.id, int(now // 60))
        assert await redis.hget(key, "bot") is None
    assert int(await redis.hget(key, "bot")) == 1


async def test_a_flush_returns_once_the_counts_another_took_are_in_redis(keys, redis):
    """GET .../health flushes the process's counts before it reads: when the periodic flush
    has just taken them and is still on its way, the read must wait for it, or the owner's
    own test event is missing from the panel until its next load."""
    from realtime.ingest_health import IngestTally

    tally = IngestTally(keys)
    now = 1_780_000_000.0
    tally.add(8, "bot", now)
    arrived, go = asyncio.Event(), asyncio.Event()

    class Held:
        """The real client, whose pipelines wait for `go` before they execute."""

        def pipeline(self, **options):
            pipe = redis.pipeline(**options)
            execute = pipe.execute

            async def held(*args, **kwargs):
                arrived.set()
                await go.wait()
                return await execute(*args, **kwargs)

            pipe.execute = held
            return pipe

    periodic = asyncio.create_task(tally.flush(Held()))
    await asyncio.wait_for(arrived.wait(), 5)
    reader = asyncio.create_task(tally.flush(redis))
    await asyncio.sleep(0.2)
    assert not reader.done()  # not before the counts the periodic flush took are in Redis
    go.set()
    assert await periodic == 1
    assert await reader == 0
    assert await redis.hget(keys.ingest_health(8, int(now // 60)), "bot") in (b"1", "1")
