"""POST /api/analytics/track, line by line of the contract."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import orjson
import pytest

from realtime.days import local_day
from realtime.event_types import COUNTER_OF
from tests.support.apps import flush, quart_view, serving_app
from tests.support.http import new_address, track
from tests.support.settings import make_settings

BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"


async def test_accepts_each_event_type(client, tenant, clock, redis, keys):
    for event_type in ["pageview", "click_whatsapp", "click_call", "click_toggle_currency",
                       "qr_scan", "product_click"]:
        response = await track(client, tenant.id, event_type, {"button_location": "hero"})
        assert response.status_code == 200, await response.get_data()
        assert await response.get_json() == {"success": True}
    response = await track(client, tenant.id, "time_on_page", {"seconds": 42.5})
    assert response.status_code == 200
    # Each one counted, once, under its own counter.
    assert await live_totals(redis, keys, tenant, clock.now) == {
        "events": 7, **{counter: 1 for counter in COUNTER_OF.values()}, "time_on_page_ms": 42_500,
    }


async def test_text_plain_from_send_beacon(client, tenant, clock, redis, keys):
    response = await track(client, tenant.id, "qr_scan", content_type="text/plain;charset=UTF-8")
    assert response.status_code == 200
    assert await live_totals(redis, keys, tenant, clock.now) == {"events": 1, "qr_scans": 1}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"", 400),
        (b"\xff\xfe\x00", 400),
        (b"[1, 2]", 400),
        (b'"pageview"', 400),
        (b'{"event_type": "pageview"}', 400),
        (b'{"tenant_id": true, "event_type": "pageview"}', 400),
        (b'{"tenant_id": 1.0, "event_type": "pageview"}', 400),
        (b'{"tenant_id": "1", "event_type": "pageview"}', 400),
        (b'{"tenant_id": 0, "event_type": "pageview"}', 400),
        (b'{"tenant_id": -3, "event_type": "pageview"}', 400),
        (b'{"tenant_id": 9223372036854775808, "event_type": "pageview"}', 400),
        (b'{"tenant_id": 1, "event_type": "purchase"}', 400),
        (b'{"tenant_id": 1, "event_type": null}', 400),
        (b'{"tenant_id": 1, "event_type": "pageview", "metadata": []}', 400),
        (b'{"tenant_id": 1, "event_type": "pageview", "metadata": "x"}', 400),
        (b'{"tenant_id": 1, "event_type": "pageview", "metadata": {"x": NaN}}', 400),
        (b'{"tenant_id": 1, "event_type": "time_on_page"}', 400),
        (b'{"tenant_id": 1, "event_type": "time_on_page", "metadata": {"seconds": -1}}', 400),
        (b'{"tenant_id": 1, "event_type": "time_on_page", "metadata": {"seconds": 86401}}', 400),
        (b'{"tenant_id": 1, "event_type": "time_on_page", "metadata": {"seconds": "9"}}', 400),
        (b'{"tenant_id": 1, "event_type": "time_on_page", "metadata": {"seconds": true}}', 400),
        (b'{"tenant_id": 1, "event_type": "pageview", "metadata": {"a": "' + b"x" * 4100
         + b'"}}', 413),
        (b'{"tenant_id": 1, "event_type": "pageview", "pad": "' + b"x" * 17000 + b'"}', 413),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, 400),
    ],
)
async def test_rejects_bad_bodies(client, body, status):
    response = await track(client, None, body=body)
    assert response.status_code == status
    document = await response.get_json()
    assert document["success"] is False
    assert isinstance(document["error"], str) and document["error"]


async def test_other_content_types_are_415(client, tenant):
    for content_type in ["application/x-www-form-urlencoded", "multipart/form-data", "text/html"]:
        response = await track(client, tenant.id, content_type=content_type)
        assert response.status_code == 415
        assert (await response.get_json())["success"] is False


async def test_unknown_tenant_is_404(client):
    response = await track(client, 987_654_321)
    assert response.status_code == 404
    assert "987654321" in (await response.get_json())["error"]


async def test_new_tenant_is_seen_without_restart(client, pool):
    from app.accounts.tenants import create_tenant

    await asyncio.sleep(1.1)  # let a previous miss' throttle lapse
    fresh = await create_tenant(pool, "Brand new", "Europe/Madrid")
    response = await track(client, fresh.id)
    assert response.status_code == 200


async def test_cors_preflight_and_headers(client):
    response = await client.options(
        "/api/analytics/track",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    bad = await track(client, None, body=b"nope")
    assert bad.headers["Access-Control-Allow-Origin"] == "*"


async def test_stores_hash_user_agent_and_referrer_never_the_address(settings, tenant, redis, keys,
                                                                    pool):
    address = "203.0.113.77"
    # Behind one trusted proxy, so the address X-Forwarded-For names IS the client's.
    async with serving_app(settings, trusted_proxy_hops=1) as app:
        client = app.test_client()
        response = await track(
            client, tenant.id, "click_whatsapp", {"button_location": "hero"},
            headers={"User-Agent": BROWSER, "Referer": "https://cafe.example/menu",
                     "X-Forwarded-For": f"198.51.100.1, {address}"},
        )
        assert response.status_code == 200
        await assert_buffered_once_without(address, tenant, redis, keys)
        await flush(app)
    # Nor does any row of any table, once the event is stored.
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables
    for table in (row["tablename"] for row in tables):
        dump = await pool.fetchval(f'SELECT string_agg(t::text, \' \') FROM "{table}" t')
        assert address not in (dump or ""), table
    assert await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant.id) == 1


async def test_bots_are_answered_but_not_counted(client, tenant, redis, keys):
    response = await track(
        client, tenant.id,
        headers={"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
    )
    assert response.status_code == 200
    assert await response.get_json() == {"success": True}
    assert await redis.zcard(keys.rate(tenant.id)) == 0


WAVE = 25


async def test_rate_limit_is_exact_under_concurrency(settings, tenant):
    # Deadlines far above the contract's: on a busy machine some of 200 requests at once
    # would wait past 0.4 s for a pooled connection and get a 503, which says nothing about
    # whether exactly `limit` got through.
    async with serving_app(settings, redis_connect_timeout=10, redis_reply_timeout=10,
                           track_deadline=20) as app:
        client = app.test_client()
        limit = app.extensions["analytics"].settings.rate_limit_per_minute
        # Each from an address of its own: the limit per address is not what this is about.
        # In waves of 25 at once: a cold cluster client opening 200 connections at once can
        # lose some to a redis-py race (a 500 that says nothing about the limit).
        responses = []
        for _ in range(0, 2 * limit, WAVE):
            responses += await asyncio.gather(*[track(client, tenant.id, address=new_address())
                                                for _ in range(WAVE)])
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == limit
        assert statuses.count(429) == limit
        rejected = next(r for r in responses if r.status_code == 429)
        assert 1 <= int(rejected.headers["Retry-After"]) <= 60
        assert (await rejected.get_json())["success"] is False


async def test_rate_limit_window_rolls(client, tenant, app, clock):
    limit = app.extensions["analytics"].settings.rate_limit_per_minute
    start = clock.now
    # Each event from an address of its own: the limit per address is not what this is about.
    # Half the limit at t=0, the other half at t=30: full.
    for _ in range(limit // 2):
        assert (await track(client, tenant.id, address=new_address())).status_code == 200
    clock.now = start + 30
    for _ in range(limit - limit // 2):
        assert (await track(client, tenant.id, address=new_address())).status_code == 200
    refused = await track(client, tenant.id, address=new_address())
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    # At t=59.9 the first half is still inside the rolling window (a fixed minute would reset).
    clock.now = start + 59.9
    assert (await track(client, tenant.id, address=new_address())).status_code == 429
    # At t=60.001 the first half has left the window: exactly that many fit again.
    clock.now = start + 60.001
    for _ in range(limit // 2):
        assert (await track(client, tenant.id, address=new_address())).status_code == 200
    assert (await track(client, tenant.id, address=new_address())).status_code == 429


async def test_redis_down_is_503_quickly(settings, database, tenant):
    import time

    from app.factory import create_app

    app = create_app(make_settings(redis_url="redis://127.0.0.1:1/0"))
    async with app.test_app():
        client = app.test_client()
        started = time.monotonic()
        response = await track(client, tenant.id)
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert (await response.get_json())["success"] is False
    assert elapsed < 1.0


async def test_trusted_proxy_hops(app):
    from realtime.privacy import client_address

    assert client_address("10.0.0.1", "1.2.3.4, 5.6.7.8", 0) == "10.0.0.1"
    assert client_address("10.0.0.1", "1.2.3.4, 5.6.7.8", 1) == "5.6.7.8"
    assert client_address("10.0.0.1", "1.2.3.4, 5.6.7.8", 2) == "1.2.3.4"
    assert client_address("10.0.0.1", "1.2.3.4", 2) == "10.0.0.1"
    assert client_address("10.0.0.1", "garbage", 1) == "10.0.0.1"


async def test_tenant_id_at_the_integer_limits(client):
    assert (await track(client, 2**63 - 1)).status_code == 404
    for tenant_id in (b"9223372036854775808", b"-9223372036854775809"):
        body = b'{"tenant_id": %s, "event_type": "pageview"}' % tenant_id
        assert (await track(client, None, body=body)).status_code == 400


async def test_hostile_metadata_is_kept_as_inert_data(app, client, tenant, pool):
    hostile = {
        "key": "{s1}:t:1:rate",
        "sql": "'); DROP TABLE events; --",
        "lua": "redis.call('FLUSHALL')",
        "nested": {"a": [1, {"b": None}], "unicode": "\u202e\U0001f600"},
    }
    response = await track(client, tenant.id, "product_click", hostile)
    assert response.status_code == 200
    await flush(app)
    stored = await pool.fetchval("SELECT metadata FROM events WHERE tenant_id = $1", tenant.id)
    assert orjson.loads(stored) == hostile


async def test_nul_characters_are_refused_before_they_reach_postgres(client, tenant):
    body = b'{"tenant_id": %d, "event_type": "pageview", "metadata": {"a": "x\\u0000"}}' % tenant.id
    response = await track(client, None, body=body)
    assert response.status_code == 400
    assert "NUL" in (await response.get_json())["error"]


async def test_duplicate_keys_take_the_last_value(client, tenant):
    body = (f'{{"tenant_id": 999999999, "tenant_id": {tenant.id}, '
            f'"event_type": "pageview"}}').encode()
    assert (await track(client, None, body=body)).status_code == 200


async def test_quart_view_and_fast_path_answer_alike(app, client, tenant):
    """Both adapters of the endpoint give the same status, body and CORS header."""
    cases = [
        dict(tenant_id=tenant.id),
        dict(tenant_id=None, body=b"nope"),
        dict(tenant_id=987_654_321),
        dict(tenant_id=tenant.id, content_type="text/html"),
        dict(tenant_id=None, body=b'{"tenant_id": 1, "event_type": "pageview", "m": "'
             + b"x" * 17000 + b'"}'),
    ]
    fast = app.asgi_app
    answers = {}
    try:
        for name, asgi in (("fast", fast), ("quart", quart_view(app))):
            app.asgi_app = asgi
            answers[name] = []
            for case in cases:
                tenant_id = case.pop("tenant_id")
                response = await track(client, tenant_id, **case)
                case["tenant_id"] = tenant_id
                answers[name].append((response.status_code, await response.get_json(),
                                      response.headers.get("Access-Control-Allow-Origin")))
    finally:
        app.asgi_app = fast
    assert answers["fast"] == answers["quart"]
    assert [a[0] for a in answers["fast"]] == [200, 400, 404, 415, 413]


async def _asgi_post(app, messages):
    """POST /track through the app's ASGI entry with the given body messages."""
    sent = []
    queue = list(messages)

    async def receive():
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # a client that never sends the rest

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/analytics/track", "raw_path": b"/api/analytics/track",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 80),
             "headers": [(b"content-type", b"application/json"), (b"user-agent", b"Mozilla/5.0")]}
    await app.asgi_app(scope, receive, send)
    return sent[0]["status"], orjson.loads(sent[1]["body"])


async def test_a_trickled_body_is_cut_off(settings, tenant):
    async with serving_app(settings, track_body_timeout=0.3) as app:
        half = {"type": "http.request", "body": b'{"tenant_id": ', "more_body": True}
        status, body = await _asgi_post(app, [half])
        assert status == 408 and body["success"] is False
        rest = b'%d, "event_type": "pageview"}' % tenant.id
        whole = [half, {"type": "http.request", "body": rest, "more_body": False}]
        assert (await _asgi_post(app, whole))[0] == 200
        big = [{"type": "http.request", "body": b"x" * 10_000, "more_body": True}] * 2
        assert (await _asgi_post(app, big))[0] == 413


async def live_totals(redis, keys, tenant, now: float) -> dict[str, int]:
    """The tenant's running totals of the day `now` falls on."""
    day = local_day(now, ZoneInfo(tenant.timezone))
    totals = await redis.hgetall(keys.totals(tenant.id, day))
    return {name.decode(): int(value) for name, value in totals.items()}


async def assert_buffered_once_without(address: str, tenant, redis, keys) -> None:
    """The raw event is buffered as the contract says, and no key or value this run wrote to
    Redis holds the address, whatever the key's type."""
    entries = await redis.xrange(keys.events(keys.shard_of(tenant.id)))
    mine = [e for e in (orjson.loads(f[b"e"]) for _, f in entries) if e["tenant"] == tenant.id]
    assert len(mine) == 1
    stored = mine[0]
    assert stored["type"] == "click_whatsapp"
    assert stored["ua"] == BROWSER
    assert stored["ref"] == "https://cafe.example/menu"
    assert stored["meta"] == {"button_location": "hero"}
    assert len(stored["ip"]) == 45
    int(stored["ip"], 16)
    raw = address.encode()
    searched = 0
    async for key in redis.scan_iter(match=keys.pattern(), count=1000):
        assert raw not in key
        kind = await redis.type(key)
        if kind == b"stream":
            values = [v for _, fields in await redis.xrange(key) for pair in fields.items()
                      for v in pair]
        elif kind == b"string":
            values = [await redis.get(key) or b""]
        elif kind == b"hash":
            values = [v for pair in (await redis.hgetall(key)).items() for v in pair]
        elif kind == b"zset":
            values = await redis.zrange(key, 0, -1)
        elif kind == b"set":
            values = list(await redis.smembers(key))
        elif kind == b"list":
            values = await redis.lrange(key, 0, -1)
        elif kind == b"none":
            continue  # expired while we looked
        else:
            raise AssertionError(f"{key!r} is a {kind!r}: search it too")
        assert all(raw not in v for v in values), key
        searched += 1
    assert searched
