"""Several X-Forwarded-For lines are one list: /track (its ASGI fast path and its Quart view)
and /login read them the same way, through `realtime.privacy.client_address` (security
review, second pass, finding 8: /track took the last line, /login the first)."""

from __future__ import annotations

import time

import httpx
import orjson
from werkzeug.datastructures import Headers

from realtime.privacy import client_address, ip_hash
from tests.support.apps import quart_view, serving_app
from tests.support.http import from_address, new_address
from tests.support.servers import web_server

SPOOFED, REAL, EDGE = "198.51.100.66", "203.0.113.50", "192.0.2.10"
HOPS = 2  # an edge proxy, then ours
# The client sent a line of its own, the edge appended the client's address to it, and our
# proxy added a second line naming the edge. Joined: SPOOFED, REAL, EDGE; two trusted hops
# give REAL. The first line alone would give SPOOFED, the last alone too few hops.
LINES = [("X-Forwarded-For", f"{SPOOFED}, {REAL}"), ("X-Forwarded-For", EDGE)]


def test_lines_are_joined_before_the_trusted_hop_is_picked():
    lines = [value for _, value in LINES]
    assert client_address("10.0.0.1", lines, HOPS) == REAL
    assert client_address("10.0.0.1", lines, 1) == EDGE
    assert client_address("10.0.0.1", lines, 3) == SPOOFED
    assert client_address("10.0.0.1", [], 1) == "10.0.0.1"


async def stored_address_hash(app, redis, keys, tenant_id: int) -> str:
    entries = await redis.xrange(keys.events(keys.shard_of(tenant_id)))
    [mine] = [e for e in (orjson.loads(f[b"e"]) for _, f in entries) if e["tenant"] == tenant_id]
    return mine["ip"]


async def send(client, tenant_id: int):
    headers = Headers([("Content-Type", "application/json"), ("User-Agent", "Mozilla/5.0"),
                       *LINES])
    return await client.post("/api/analytics/track", headers=headers,
                             data=orjson.dumps({"tenant_id": tenant_id, "event_type": "pageview"}),
                             scope_base=from_address(new_address()))


async def test_track_reads_every_line_on_the_fast_path(settings, database, redis, keys, pool):
    from app.accounts.tenants import create_tenant

    tenant = await create_tenant(pool, "Proxied", "UTC")
    async with serving_app(settings, trusted_proxy_hops=HOPS) as app:
        response = await send(app.test_client(), tenant.id)
        assert response.status_code == 200
        svc = app.extensions["analytics"]
        salt = await svc.salts.for_time(svc.clock())
        assert await stored_address_hash(app, redis, keys, tenant.id) == ip_hash(salt, REAL)


async def test_track_reads_every_line_in_the_quart_view(settings, database, redis, keys, pool):
    from app.accounts.tenants import create_tenant

    tenant = await create_tenant(pool, "Proxied", "UTC")
    async with serving_app(settings, trusted_proxy_hops=HOPS) as app:
        app.asgi_app = quart_view(app)  # the view the fast path stands in for
        response = await send(app.test_client(), tenant.id)
        assert response.status_code == 200
        svc = app.extensions["analytics"]
        salt = await svc.salts.for_time(svc.clock())
        assert await stored_address_hash(app, redis, keys, tenant.id) == ip_hash(salt, REAL)


async def test_login_reads_every_line(settings, database, redis):
    async with serving_app(settings, trusted_proxy_hops=HOPS) as app:
        throttle = app.extensions["analytics"].login_throttle
        headers = Headers([("Content-Type", "application/json"), *LINES])
        response = await app.test_client().post(
            "/login", headers=headers, scope_base=from_address(new_address()),
            data=orjson.dumps({"email": "nobody@example.com", "password": "wrong password"}))
        assert response.status_code == 401
        assert await redis.zcard(throttle.client_key(REAL)) == 1
        assert await redis.zcard(throttle.client_key(SPOOFED)) == 0


async def test_a_served_process_leaves_x_forwarded_for_to_the_trusted_hops(
        settings, database, redis, keys, pool):
    """uvicorn, as `analytics serve` runs it (app/http/serving.py), does not rewrite the
    client's address from X-Forwarded-For on its own: with no trusted hop, the line a client
    wrote counts for nothing, even from loopback, where uvicorn would trust it by default."""
    from app.accounts.tenants import create_tenant
    from realtime.privacy import DailySalts

    tenant = await create_tenant(pool, "Direct", "UTC")
    async with web_server(settings, TRUSTED_PROXY_HOPS=0) as web, httpx.AsyncClient() as http:
        response = await http.post(
            f"{web.http}/api/analytics/track",
            headers={"Content-Type": "application/json", "User-Agent": "Mozilla/5.0",
                     "X-Forwarded-For": SPOOFED},
            content=orjson.dumps({"tenant_id": tenant.id, "event_type": "pageview"}))
        assert response.status_code == 200
    salt = await DailySalts(redis, keys).for_time(time.time())
    assert await stored_address_hash(None, redis, keys, tenant.id) == ip_hash(salt, "127.0.0.1")
