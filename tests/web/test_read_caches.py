"""Reads of numbers served from each process's caches (app/http/reads.py) are never stale:
two apps on the same Redis and Postgres stand for two `web` processes. A repeated read asks
Postgres nothing; a revocation or a flush in one process shows in the other's very next read;
without Redis every read goes to Postgres, as before."""

from __future__ import annotations

import datetime as dt

import pytest

from app.accounts.revocation import revoke_token_everywhere
from app.accounts.shares import create_share
from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token, revoke_token
from app.clients import STORE_ERRORS, make_redis
from realtime import generations
from realtime.keys import GENERATION_TTL_SECONDS, SHARDS
from rollups.rebuild import rebuild
from tests.support.apps import counting_queries, drain, flush, serving_app
from tests.support.http import bearer, login, track, visitor
from tests.support.servers import free_port

PATHS = ["", "/today"]


async def read(client, tenant_id: int, headers: dict, path: str = "") -> dict:
    response = await client.get(f"/api/analytics/{tenant_id}{path}", headers=headers)
    assert response.status_code == 200, await response.get_data()
    return await response.get_json()


async def warm(client, tenant_id: int, headers: dict, path: str = "") -> dict:
    """Reads twice: a tenant's first read starts its generations, the next fills the caches
    under them."""
    await read(client, tenant_id, headers, path)
    return await read(client, tenant_id, headers, path)


@pytest.mark.parametrize("path", PATHS, ids=["summary", "today"])
async def test_a_revoked_token_is_refused_by_the_next_read_of_another_process(
        settings, database, redis, pool, tenant, owner, path):
    token, plaintext = await create_token(pool, tenant.id, "reports")
    async with serving_app(settings) as first, serving_app(settings) as second:
        reader = second.test_client()
        await warm(reader, tenant.id, bearer(plaintext), path)
        with counting_queries(second) as pg:
            await read(reader, tenant.id, bearer(plaintext), path)
        assert pg.queries == 0  # the token and the answer came from the second's caches

        owner_client = first.test_client()
        await login(owner_client, owner.email)
        gone = await owner_client.delete(f"/api/analytics/{tenant.id}/tokens/{token.id}",
                                         json={})
        assert gone.status_code == 200
        refused = await reader.get(f"/api/analytics/{tenant.id}{path}",
                                   headers=bearer(plaintext))
        assert refused.status_code == 401


async def test_a_revoked_share_link_is_refused_by_the_next_read_of_another_process(
        settings, database, redis, pool, tenant, owner):
    share, plaintext = await create_share(pool, tenant.id)
    async with serving_app(settings) as first, serving_app(settings) as second:
        reader = second.test_client()
        await warm(reader, tenant.id, bearer(plaintext))
        with counting_queries(second) as pg:
            await read(reader, tenant.id, bearer(plaintext))
        assert pg.queries == 0

        owner_client = first.test_client()
        await login(owner_client, owner.email)
        gone = await owner_client.delete(f"/api/analytics/{tenant.id}/shares/{share.id}",
                                         json={})
        assert gone.status_code == 200
        refused = await reader.get(f"/api/analytics/{tenant.id}", headers=bearer(plaintext))
        assert refused.status_code == 401


@pytest.mark.parametrize("path", PATHS, ids=["summary", "today"])
async def test_a_flush_in_one_process_shows_in_the_next_read_of_another(
        settings, database, redis, tenant, auth_headers, path):
    async with serving_app(settings) as first, serving_app(settings) as second:
        reader = second.test_client()
        before = await warm(reader, tenant.id, auth_headers, path)
        with counting_queries(second) as pg:
            assert await read(reader, tenant.id, auth_headers, path) == before
        assert pg.queries == 0

        sender = first.test_client()
        for n in range(2):
            response = await track(sender, tenant.id, "qr_scan", headers=visitor(n))
            assert response.status_code == 200
        # The drain renews the generation too: the reader fills its cache after it, so only
        # the flush's renewal can bring the flushed numbers.
        await drain(first)
        await warm(reader, tenant.id, auth_headers, path)
        await flush(first)
        after = await read(reader, tenant.id, auth_headers, path)
        numbers = after.get("data", after)
        assert numbers["visitors_today"] == numbers["qr_scans"] == 2


async def test_a_drain_in_one_process_shows_in_the_next_hourly_series_of_another(
        settings, database, redis, tenant, auth_headers):
    """Today's hours are counted from the stored events: a drain alone, with nothing
    flushed and its events still queued for the breakdowns, renews the generation."""
    path = "/stats?period=today"
    async with serving_app(settings) as first, serving_app(settings) as second:
        reader = second.test_client()
        before = await warm(reader, tenant.id, auth_headers, path)
        assert sum(hour["pageviews"] for hour in before["data"]["series"]) == 0
        response = await track(first.test_client(), tenant.id, "pageview", headers=visitor(1))
        assert response.status_code == 200
        assert await drain(first, count_breakdowns=False) == 1
        after = await read(reader, tenant.id, auth_headers, path)
        assert sum(hour["pageviews"] for hour in after["data"]["series"]) == 1


async def test_generations_lost_in_a_redis_restart_serve_nothing_from_the_caches(
        settings, database, redis, keys, tenant, auth_headers):
    """A Redis restarted empty loses the generations and what a flush renewed them to; a
    process still holding an answer must not take the missing generation for its own."""
    names = (keys.rollups_generation(tenant.id), keys.credentials_generation(tenant.id))
    async with serving_app(settings) as first, serving_app(settings) as second:
        reader, sender = second.test_client(), first.test_client()
        for visitors in (1, 2):  # an answer read with the generations present, then without
            await warm(reader, tenant.id, auth_headers)
            if visitors == 2:
                await redis.delete(*names)
                await read(reader, tenant.id, auth_headers)
            response = await track(sender, tenant.id, "pageview", headers=visitor(visitors))
            assert response.status_code == 200
            await flush(first)
            await redis.delete(*names)  # the restart
            answer = await read(reader, tenant.id, auth_headers)
            assert answer["data"]["visitors_today"] == visitors


async def test_cached_credentials_expire_and_are_rechecked_in_postgres(
        app, client, clock, pool, tenant):
    clock.now = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC).timestamp()
    moment = dt.datetime.fromtimestamp(clock.now, dt.UTC)
    _, plaintext = await create_token(pool, tenant.id, "short",
                                      expires_at=moment + dt.timedelta(seconds=90))
    await warm(client, tenant.id, bearer(plaintext), "/today")
    clock.now += 30
    with counting_queries(app) as pg:
        await read(client, tenant.id, bearer(plaintext), "/today")
    assert pg.queries == 0
    # At least once a minute Postgres is asked again (and records the token's last use).
    clock.now += 40
    with counting_queries(app) as pg:
        await read(client, tenant.id, bearer(plaintext), "/today")
    assert pg.queries > 0
    clock.now += 25  # past the expiry, within a minute of the last check
    expired = await client.get(f"/api/analytics/{tenant.id}/today", headers=bearer(plaintext))
    assert expired.status_code == 401


async def test_a_cached_summary_turns_the_page_at_the_tenants_midnight(
        app, client, clock, pool):
    tenant = await create_tenant(pool, "Midnight cafe", "America/Sao_Paulo")
    _, plaintext = await create_token(pool, tenant.id)
    zone = dt.timezone(dt.timedelta(hours=-3))
    clock.now = dt.datetime(2026, 5, 4, 23, 59, 50, tzinfo=zone).timestamp()
    before = await warm(client, tenant.id, bearer(plaintext))
    assert before["data"]["last_7_days"][-1]["date"] == "2026-05-04"
    clock.now += 20
    after = await read(client, tenant.id, bearer(plaintext))
    assert after["data"]["last_7_days"][-1]["date"] == "2026-05-05"


async def test_no_generation_is_started_before_authorization(client, redis, keys, pool):
    tenant = await create_tenant(pool, "Quiet cafe")
    names = (keys.rollups_generation(tenant.id), keys.credentials_generation(tenant.id))
    refused = await client.get(f"/api/analytics/{tenant.id}")
    assert refused.status_code == 401
    assert await redis.exists(*names) == 0
    _, plaintext = await create_token(pool, tenant.id)
    await read(client, tenant.id, bearer(plaintext))
    assert await redis.exists(*names) == 2


async def test_without_redis_reads_go_to_postgres_and_revocations_wait(
        settings, database, pool, tenant):
    """Redis unreachable: a read answers from Postgres alone, a revocation made there
    applies at once, and one that cannot renew the generation is not made at all."""
    gone = f"redis://127.0.0.1:{free_port()}/0"
    token, plaintext = await create_token(pool, tenant.id)
    async with serving_app(settings, redis_url=gone) as app:
        client = app.test_client()
        for _ in range(2):
            assert (await read(client, tenant.id, bearer(plaintext), "/today"))["success"]
        unreachable = make_redis(gone, timeout=0.5)
        try:
            with pytest.raises(STORE_ERRORS):
                await revoke_token_everywhere(pool, unreachable, app.extensions["analytics"].keys,
                                              token.id)
        finally:
            await unreachable.aclose()
        assert (await read(client, tenant.id, bearer(plaintext), "/today"))["success"]
        assert await revoke_token(pool, token.id)
        refused = await client.get(f"/api/analytics/{tenant.id}/today",
                                   headers=bearer(plaintext))
        assert refused.status_code == 401


@pytest.mark.parametrize("path", PATHS, ids=["summary", "today"])
async def test_an_answer_from_the_caches_is_the_answer_quart_gave(
        app, client, pool, tenant, monkeypatch, path):
    """The read fast path (app/http/read_fastpath.py) sends what Quart sent, headers too."""
    _, plaintext = await create_token(pool, tenant.id)
    url = f"/api/analytics/{tenant.id}{path}"
    await client.get(url, headers=bearer(plaintext))  # starts the generations
    from_quart = await client.get(url, headers=bearer(plaintext))
    handled = []
    quart_handles = app.handle_request

    async def counted(request):
        handled.append(request.path)
        return await quart_handles(request)
    monkeypatch.setattr(app, "handle_request", counted)
    from_cache = await client.get(url, headers=bearer(plaintext))
    assert handled == []  # Quart never saw it
    assert from_cache.status_code == from_quart.status_code == 200
    assert await from_cache.get_data() == await from_quart.get_data()
    assert sorted(from_cache.headers.items()) == sorted(from_quart.headers.items())


async def test_a_rebuild_shows_in_the_next_read(app, client, pool, tenant, auth_headers):
    for n in range(2):
        assert (await track(client, tenant.id, "qr_scan", headers=visitor(n))).status_code == 200
    await flush(app)
    await pool.execute("UPDATE daily_rollups SET qr_scans = 0 WHERE tenant_id = $1", tenant.id)
    damaged = await warm(client, tenant.id, auth_headers)
    assert damaged["data"]["qr_scans"] == 0
    svc = app.extensions["analytics"]
    today = dt.datetime.fromtimestamp(svc.clock(), dt.UTC).date()
    await rebuild(svc.redis, svc.pool, svc.keys, svc.scripts, tenant.id, tenant.timezone,
                  today - dt.timedelta(days=1), "tests")
    assert (await read(client, tenant.id, auth_headers))["data"]["qr_scans"] == 2


@pytest.mark.parametrize("chunk", [generations.RENEW_CHUNK, 1])
async def test_a_renewal_gives_every_tenant_named_a_new_generation(app, redis, keys, pool,
                                                                   monkeypatch, chunk):
    """Tenants of every shard, two of them in one, in one call (and with script calls of one
    tenant each): each gets a fresh rollups generation that expires; a tenant not named keeps
    its own."""
    monkeypatch.setattr(generations, "RENEW_CHUNK", chunk)
    svc = app.extensions["analytics"]
    tenants = [(await create_tenant(pool, f"Renewed {n}")).id for n in range(SHARDS + 2)]
    kept, renewed = tenants[0], tenants[1:]
    assert {keys.shard_of(t) for t in renewed} == set(range(SHARDS))  # so one holds two
    names = {t: keys.rollups_generation(t) for t in tenants}
    for name in names.values():
        await redis.set(name, b"old", ex=60)

    await generations.renew_rollups(svc.scripts, keys, [*renewed, renewed[0]])  # once

    values = {t: await redis.get(names[t]) for t in tenants}
    assert values[kept] == b"old"
    assert all(values[t] not in (None, b"old") for t in renewed)
    assert len({values[t] for t in renewed}) == len(renewed)  # each a value of its own
    for t in renewed:
        assert 60 < await redis.ttl(names[t]) <= GENERATION_TTL_SECONDS
