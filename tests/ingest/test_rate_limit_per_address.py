"""The limit per client address (RATE_LIMIT_PER_ADDRESS_PER_MINUTE, default 30, rolling 60 s;
security review, second pass, finding 1: one client with a new User-Agent per request could
spend a tenant's whole budget and lock every real visitor out for a minute).

Counted in the same single script call as the tenant's limit, on the address's salted daily
hash; the events one address is refused do not use the tenant's budget.
"""

from __future__ import annotations

import orjson

from tests.support.apps import serving_app
from tests.support.http import new_address, track, visitor

PER_ADDRESS = 30  # the default
PER_TENANT = 100


def a_block() -> str:
    """The first address of an IPv6 /64 of the test's own."""
    return new_address().rsplit("::", 1)[0]


async def test_the_31st_event_from_one_address_is_refused_and_others_go_on(
        app, client, tenant, clock, redis, keys):
    assert app.extensions["analytics"].settings.rate_limit_per_address_per_minute == PER_ADDRESS
    first, second = new_address(), new_address()
    # A new browser each time, as the review's probe did: the address is what is counted.
    for n in range(PER_ADDRESS):
        response = await track(client, tenant.id, headers=visitor(n), address=first)
        assert response.status_code == 200
    refused = await track(client, tenant.id, headers=visitor(99), address=first)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    error = (await refused.get_json())["error"]
    assert "per address" in error and str(PER_ADDRESS) in error
    assert (await track(client, tenant.id, address=second)).status_code == 200

    # The refused events used none of the tenant's budget: 31 of 100 are taken, so 69 more
    # from other addresses fit, however many the first address was refused meanwhile.
    for _ in range(10):
        assert (await track(client, tenant.id, address=first)).status_code == 429
    assert await redis.zcard(keys.rate(tenant.id)) == PER_ADDRESS + 1
    for _ in range(PER_TENANT - PER_ADDRESS - 1):
        assert (await track(client, tenant.id, address=new_address())).status_code == 200
    over = await track(client, tenant.id, address=new_address())
    assert over.status_code == 429
    assert "per address" not in (await over.get_json())["error"]  # the tenant's limit now


async def test_the_window_rolls_per_address(client, tenant, clock):
    address, start = new_address(), clock.now
    for _ in range(PER_ADDRESS // 2):
        assert (await track(client, tenant.id, address=address)).status_code == 200
    clock.now = start + 30
    for _ in range(PER_ADDRESS - PER_ADDRESS // 2):
        assert (await track(client, tenant.id, address=address)).status_code == 200
    clock.now = start + 59.9  # the first half is still in the window
    refused = await track(client, tenant.id, address=address)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    clock.now = start + 60.001  # it has left: exactly that many fit again
    for _ in range(PER_ADDRESS // 2):
        assert (await track(client, tenant.id, address=address)).status_code == 200
    assert (await track(client, tenant.id, address=address)).status_code == 429


async def test_each_tenant_has_its_own_count_per_address(client, tenant, pool, clock):
    from app.accounts.tenants import create_tenant

    other = await create_tenant(pool, "Another cafe", "UTC")
    address = new_address()
    for _ in range(PER_ADDRESS):
        assert (await track(client, tenant.id, address=address)).status_code == 200
    assert (await track(client, tenant.id, address=address)).status_code == 429
    assert (await track(client, other.id, address=address)).status_code == 200


async def test_an_ipv6_slash_64_is_one_client(client, tenant, clock):
    block = a_block()
    for n in range(PER_ADDRESS):
        address = f"{block}:{n + 1:x}::{n + 1:x}"
        assert (await track(client, tenant.id, address=address)).status_code == 200
    assert (await track(client, tenant.id, address=f"{block}::beef")).status_code == 429
    assert (await track(client, tenant.id, address=f"{a_block()}::1")).status_code == 200


async def test_the_address_behind_a_trusted_proxy_is_counted(settings, database, redis, tenant):
    async with serving_app(settings, trusted_proxy_hops=1) as app:
        client, proxy = app.test_client(), new_address()
        # Every request from the one proxy, each client named in the header it appends.
        first, second = "203.0.113.5", "203.0.113.6"
        for _ in range(PER_ADDRESS):
            response = await track(client, tenant.id, address=proxy,
                                   headers={"X-Forwarded-For": first})
            assert response.status_code == 200
        refused = await track(client, tenant.id, address=proxy, headers={"X-Forwarded-For": first})
        assert refused.status_code == 429
        # A client cannot pose as another by sending a header of its own: the proxy's entry,
        # the last, is what counts.
        spoofed = await track(client, tenant.id, address=proxy,
                              headers={"X-Forwarded-For": f"{second}, {first}"})
        assert spoofed.status_code == 429
        ok = await track(client, tenant.id, address=proxy, headers={"X-Forwarded-For": second})
        assert ok.status_code == 200


async def test_zero_turns_it_off(settings, database, redis, tenant):
    async with serving_app(settings, rate_limit_per_address_per_minute=0) as app:
        client, address = app.test_client(), new_address()
        for _ in range(PER_ADDRESS + 10):
            assert (await track(client, tenant.id, address=address)).status_code == 200


async def test_the_count_is_kept_under_a_hash_for_a_minute(app, client, tenant, clock, redis,
                                                             keys):
    from realtime.privacy import ip_hash

    address = "198.51.100.23"
    assert (await track(client, tenant.id, address=address)).status_code == 200
    salt = await app.extensions["analytics"].salts.for_time(clock.now)
    key = keys.address_rate(tenant.id, ip_hash(salt, address))
    assert address not in key
    assert await redis.zcard(key) == 1
    assert 0 < await redis.pttl(key) <= 60_000


async def test_track_is_still_one_redis_call(app, client, tenant, clock, monkeypatch):
    import asyncio

    svc = app.extensions["analytics"]
    # Once per process and day, not per event: the script is loaded on its node and the
    # day's salt fetched.
    assert (await track(client, tenant.id, address=new_address())).status_code == 200
    calls = []
    original = svc.redis.execute_command

    async def counted(*args, **kwargs):
        task = asyncio.current_task()
        # The app's own background refresher (tenants, salts) may run meanwhile: not ours.
        if task is None or task.get_coro().__name__ != "background":
            calls.append(args[0])
        return await original(*args, **kwargs)

    monkeypatch.setattr(svc.redis, "execute_command", counted)
    response = await track(client, tenant.id, address=new_address())
    assert response.status_code == 200
    assert calls == ["EVALSHA"]


async def test_a_refused_event_leaves_no_trace(client, tenant, clock, redis, keys):
    address = new_address()
    for _ in range(PER_ADDRESS):
        await track(client, tenant.id, address=address)
    stream = keys.events(keys.shard_of(tenant.id))
    before = [e for e in (orjson.loads(f[b"e"]) for _, f in await redis.xrange(stream))
              if e["tenant"] == tenant.id]
    assert len(before) == PER_ADDRESS
    assert (await track(client, tenant.id, "click_call", address=address)).status_code == 429
    after = [e for e in (orjson.loads(f[b"e"]) for _, f in await redis.xrange(stream))
             if e["tenant"] == tenant.id]
    assert after == before
