"""Rollups and the dashboard endpoints: exact numbers, nothing lost or counted twice."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from zoneinfo import ZoneInfo

import orjson
import pytest

from app.accounts.tenants import create_tenant
from rollups.locks import Locking
from tests.support.apps import flush
from tests.support.http import bearer, new_address, track, visitor

DAY = 86_400


def at(zone: str, *args) -> float:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone)).timestamp()


async def summary(client, tenant_id, headers):
    response = await client.get(f"/api/analytics/{tenant_id}", headers=headers)
    assert response.status_code == 200, await response.get_data()
    document = await response.get_json()
    assert document["success"] is True
    return document["data"]


async def today(client, tenant_id, headers):
    response = await client.get(f"/api/analytics/{tenant_id}/today", headers=headers)
    assert response.status_code == 200, await response.get_data()
    return await response.get_json()


async def test_summary_shape_and_numbers(app, client, tenant, auth_headers, clock):
    clock.now = at("UTC", 2026, 3, 8, 12)
    for n in range(3):
        assert (await track(client, tenant.id, "pageview", headers=visitor(n))).status_code == 200
    await track(client, tenant.id, "click_whatsapp", headers=visitor(0))
    await track(client, tenant.id, "click_call", headers=visitor(1))
    await track(client, tenant.id, "click_toggle_currency", headers=visitor(1))
    await track(client, tenant.id, "qr_scan", headers=visitor(2))
    await track(client, tenant.id, "product_click", {"product": "latte"}, headers=visitor(2))
    await track(client, tenant.id, "product_click", {"product": "mocha"}, headers=visitor(2))
    await track(client, tenant.id, "time_on_page", {"seconds": 100}, headers=visitor(0))
    await track(client, tenant.id, "time_on_page", {"seconds": 51}, headers=visitor(1))
    clock.now = at("UTC", 2026, 3, 6, 9)
    await track(client, tenant.id, "pageview", headers=visitor(7))
    clock.now = at("UTC", 2026, 3, 8, 18)

    events, days = await flush(app)
    assert events >= 12 and days >= 2

    data = await summary(client, tenant.id, auth_headers)
    assert set(data) == {"visitors_today", "visitors_week", "whatsapp_clicks", "call_clicks",
                         "currency_toggles", "qr_scans", "avg_time_on_page", "last_7_days"}
    assert data["visitors_today"] == 3
    assert data["visitors_week"] == 4
    assert data["whatsapp_clicks"] == 1
    assert data["call_clicks"] == 1
    assert data["currency_toggles"] == 1
    assert data["qr_scans"] == 1
    assert data["avg_time_on_page"] == 76  # (100 + 51) / 2 = 75.5, rounded
    assert data["last_7_days"] == [
        {"date": "2026-03-02", "visitors": 0},
        {"date": "2026-03-03", "visitors": 0},
        {"date": "2026-03-04", "visitors": 0},
        {"date": "2026-03-05", "visitors": 0},
        {"date": "2026-03-06", "visitors": 1},
        {"date": "2026-03-07", "visitors": 0},
        {"date": "2026-03-08", "visitors": 3},
    ]
    assert await today(client, tenant.id, auth_headers) == {
        "success": True, "visitors_today": 3, "whatsapp_clicks": 1, "qr_scans": 1,
        "products_viewed": 2,
    }


async def test_empty_tenant_is_all_zeros(client, tenant, auth_headers, clock):
    clock.now = at("UTC", 2026, 3, 8, 12)
    data = await summary(client, tenant.id, auth_headers)
    assert data["visitors_today"] == data["visitors_week"] == data["avg_time_on_page"] == 0
    assert [d["visitors"] for d in data["last_7_days"]] == [0] * 7
    assert [d["date"] for d in data["last_7_days"]][-1] == "2026-03-08"


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/Los_Angeles", "Pacific/Kiritimati"])
async def test_day_boundary_in_tenant_timezone(app, client, pool, zone, clock):
    from app.accounts.tokens import create_token

    tenant = await create_tenant(pool, f"Boundary {zone}", zone)
    _, token = await create_token(pool, tenant.id)
    headers = bearer(token)
    # 23:59:59 local and 00:00:00 local the next day: two days, whatever UTC says.
    clock.now = at(zone, 2026, 7, 14, 23, 59, 59)
    assert (await track(client, tenant.id, headers=visitor(1))).status_code == 200
    clock.now = at(zone, 2026, 7, 15, 0, 0, 0)
    assert (await track(client, tenant.id, headers=visitor(2))).status_code == 200
    assert (await track(client, tenant.id, "click_whatsapp", headers=visitor(2))).status_code == 200
    await flush(app)

    clock.now = at(zone, 2026, 7, 15, 8)
    data = await summary(client, tenant.id, headers)
    assert data["last_7_days"][-2:] == [
        {"date": "2026-07-14", "visitors": 1},
        {"date": "2026-07-15", "visitors": 1},
    ]
    assert data["visitors_today"] == 1
    assert (await today(client, tenant.id, headers))["whatsapp_clicks"] == 1
    # The next local day: the 15th is yesterday, the click is still in the week.
    clock.now = at(zone, 2026, 7, 16, 0, 0, 1)
    assert (await today(client, tenant.id, headers))["whatsapp_clicks"] == 0
    data = await summary(client, tenant.id, headers)
    assert data["visitors_today"] == 0
    assert data["whatsapp_clicks"] == 1
    assert data["visitors_week"] == 2


async def test_week_visitors_is_a_union_not_a_sum(app, client, tenant, auth_headers, clock):
    start = at("UTC", 2026, 5, 1, 10)
    for day in range(7):
        clock.now = start + day * DAY
        assert (await track(client, tenant.id, headers=visitor(1))).status_code == 200
        await flush(app)
    clock.now = start + 6 * DAY + 3600
    await track(client, tenant.id, headers=visitor(2))
    await flush(app)
    data = await summary(client, tenant.id, auth_headers)
    assert [d["visitors"] for d in data["last_7_days"]] == [1, 1, 1, 1, 1, 1, 2]
    assert data["visitors_week"] == 2
    assert data["visitors_today"] == 2


async def test_redis_emptied_after_flush_numbers_do_not_go_back(app, client, tenant, auth_headers,
                                                               clock, redis, keys):
    clock.now = at("UTC", 2026, 6, 10, 9)
    for n in range(5):
        await track(client, tenant.id, "click_whatsapp", headers=visitor(n))
    await flush(app)
    before = await summary(client, tenant.id, auth_headers)
    assert before["visitors_today"] == 5 and before["whatsapp_clicks"] == 5

    # A Redis restart without persistence: every key of this run is gone.
    async for key in redis.scan_iter(match=keys.pattern(), count=1000):
        await redis.unlink(key)
    app.extensions["analytics"].salts._cache.clear()
    assert await summary(client, tenant.id, auth_headers) == before

    # Later events add on top; a returning visitor is not counted again.
    for n in (3, 4, 5):
        await track(client, tenant.id, "click_whatsapp", headers=visitor(n))
    await flush(app)
    after = await summary(client, tenant.id, auth_headers)
    assert after["whatsapp_clicks"] == 8
    assert after["visitors_today"] == 6
    # The live totals were re-seeded from Postgres too.
    totals = await redis.hgetall(keys.totals(tenant.id, dt.date(2026, 6, 10)))
    assert int(totals[b"whatsapp_clicks"]) == 8


async def test_rollups_reflect_events_only_after_flush(app, client, tenant, auth_headers, clock):
    clock.now = at("UTC", 2026, 6, 11, 9)
    await track(client, tenant.id, "qr_scan")
    assert (await today(client, tenant.id, auth_headers))["qr_scans"] == 0
    await flush(app)
    assert (await today(client, tenant.id, auth_headers))["qr_scans"] == 1


class Crash(Exception):
    pass


async def _count_rollups(pool, tenant_id):
    return await pool.fetchrow(
        """SELECT coalesce(sum(events), 0) AS events, coalesce(sum(qr_scans), 0) AS qr,
                  coalesce(sum(time_on_page_ms), 0) AS ms
           FROM daily_rollups WHERE tenant_id = $1""", tenant_id)


async def test_crashes_at_any_step_lose_nothing_and_count_nothing_twice(app, client, pool, clock):
    tenant = await create_tenant(pool, "Crashy", "Europe/Madrid")
    rng = random.Random(7)
    accepted = {"events": 0, "qr": 0, "ms": 0}
    clock.now = at("Europe/Madrid", 2026, 8, 1, 23, 59)
    steps = ["claimed", "merged", "applied", "reseeded", "inserted", None]

    async def send(kind):
        nonlocal accepted
        seconds = rng.randint(0, 300)
        metadata = {"seconds": seconds} if kind == "time_on_page" else None
        response = await track(client, tenant.id, kind, metadata,
                               headers=visitor(rng.randint(0, 20)), address=new_address())
        assert response.status_code == 200
        accepted["events"] += 1
        accepted["qr"] += kind == "qr_scan"
        accepted["ms"] += seconds * 1000 if kind == "time_on_page" else 0

    for _ in range(40):
        clock.now += rng.uniform(0.5, 20)  # crosses local midnight on the way
        for _ in range(rng.randint(0, 4)):
            await send(rng.choice(["pageview", "qr_scan", "time_on_page"]))
        step = rng.choice(steps)

        def fault(name, step=step):
            if name == step:
                raise Crash(name)

        with contextlib.suppress(Crash):
            await flush(app, fault=fault)
        # Events keep arriving between a crash and the next flush.
        await send("qr_scan")

    await flush(app)
    totals = await _count_rollups(pool, tenant.id)
    assert dict(totals) == accepted
    raw = await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant.id)
    assert raw == accepted["events"]


async def _applied_batches(pool, shard: int) -> int:
    return await pool.fetchval("SELECT count(*) FROM applied_flushes WHERE id LIKE $1",
                               f"{shard}:%")


async def test_one_flush_takes_every_dirty_day_in_batches_of_its_size(app, client, pool, clock):
    tenant = await create_tenant(pool, "Five days", "UTC")
    for day in range(5):
        clock.now = at("UTC", 2026, 3, 1, 12) + day * DAY
        assert (await track(client, tenant.id, "pageview")).status_code == 200
    assert await flush(app, batch_size=2) == (5, 5)  # two full batches, then the last
    assert (await _count_rollups(pool, tenant.id))["events"] == 5


async def test_one_flush_finishes_a_crashed_batch_and_then_what_is_dirty(app, client, pool,
                                                                        clock):
    tenant = await create_tenant(pool, "Crashed once", "UTC")
    clock.now = at("UTC", 2026, 3, 1, 12)
    assert (await track(client, tenant.id, "pageview")).status_code == 200

    def crash(name):
        if name == "claimed":
            raise Crash(name)

    with contextlib.suppress(Crash):
        await flush(app, fault=crash)
    clock.now += DAY
    assert (await track(client, tenant.id, "qr_scan")).status_code == 200
    await flush(app)
    assert dict(await _count_rollups(pool, tenant.id)) == {"events": 2, "qr": 1, "ms": 0}


async def test_a_flush_under_load_ends_with_what_was_dirty_when_it_began(app, client, pool,
                                                                        clock):
    """Events arriving all through a flush dirty its tenant-day again and again; a flush that
    went on until nothing was dirty would not end while they came."""
    from realtime.keys import Keys
    from rollups.flush import flush_shard

    svc = app.extensions["analytics"]
    tenant = await create_tenant(pool, "Busy", "UTC")
    shard = Keys.shard_of(tenant.id)
    clock.now = at("UTC", 2026, 3, 1, 12)
    assert (await track(client, tenant.id, "pageview")).status_code == 200
    await flush(app)  # the raw events out of the way: only counters below
    assert (await track(client, tenant.id, "pageview")).status_code == 200
    flushing, sent = True, 2

    async def send():
        nonlocal sent
        while flushing and sent < 300:
            response = await track(client, tenant.id, "pageview", address=new_address())
            assert response.status_code == 200
            sent += 1

    before = await _applied_batches(pool, shard)
    sending = asyncio.create_task(send())
    try:
        applied = await flush_shard(svc.redis, svc.pool, svc.keys, svc.scripts, shard,
                                    locking=Locking.WAIT)
    finally:
        flushing = False
        await sending
    assert applied == 1
    assert await _applied_batches(pool, shard) == before + 1
    assert sent > 3  # events came while it ran
    await flush(app)
    assert (await _count_rollups(pool, tenant.id))["events"] == sent


async def test_two_flushers_at_once_do_not_double_count(app, client, pool, clock):
    tenant = await create_tenant(pool, "Twins", "UTC")
    clock.now = at("UTC", 2026, 8, 2, 10)
    sent = 0
    for _ in range(8):
        for n in range(5):
            response = await track(client, tenant.id, "pageview", headers=visitor(n),
                                   address=new_address())
            assert response.status_code == 200
            sent += 1
        # Without locks, both work on the same shard and the same batches.
        await asyncio.gather(flush(app, Locking.NONE), flush(app, Locking.NONE),
                             flush(app, Locking.TRY))
    await flush(app)
    assert (await _count_rollups(pool, tenant.id))["events"] == sent
    raw = await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant.id)
    assert raw == sent


async def test_a_batch_merged_in_several_calls_counts_each_day_once(app, client, pool, clock):
    """250 tenant-days in one shard take three sketch-merge calls (SCRIPT_CHUNK each); three
    flushers at once, two without locks, still count every day exactly once. (A claim split
    into several calls failed this: another flusher applied the batch while it grew.)"""
    from rollups.flush import SCRIPT_CHUNK

    tenant = await create_tenant(pool, "Many days", "UTC")
    days = 250
    assert days > 2 * SCRIPT_CHUNK
    for day in range(days):
        clock.now = at("UTC", 2025, 6, 1, 12) + day * 86_400
        assert (await track(client, tenant.id, "pageview", headers=visitor(day))).status_code == 200
    await asyncio.gather(flush(app, Locking.NONE), flush(app, Locking.NONE),
                         flush(app, Locking.TRY))
    await flush(app)
    row = await pool.fetchrow(
        "SELECT count(*) AS days, sum(events) AS events, max(events) AS most "
        "FROM daily_rollups WHERE tenant_id = $1", tenant.id)
    assert (row["days"], row["events"], row["most"]) == (days, days, 1)


async def test_postgres_down_during_flush_loses_nothing(app, client, pool, clock, settings):
    from app.clients import make_pool
    from rollups.drain import drain_all
    from rollups.flush import flush_all

    tenant = await create_tenant(pool, "Outage", "UTC")
    clock.now = at("UTC", 2026, 8, 3, 10)
    for n in range(7):
        await track(client, tenant.id, "click_call", headers=visitor(n))
    svc = app.extensions["analytics"]
    dead = await make_pool("postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(OSError):
        await drain_all(svc.redis, dead, svc.keys, svc.scripts, consumer="tests")
    with pytest.raises(OSError):
        await flush_all(svc.redis, dead, svc.keys, svc.scripts)
    await dead.close()
    # Postgres comes back: everything is caught up.
    await flush(app)
    assert (await _count_rollups(pool, tenant.id))["events"] == 7
    assert await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant.id) == 7


async def test_raw_events_are_stored_once_with_hash_not_address(app, client, pool, clock):
    tenant = await create_tenant(pool, "Raw", "UTC")
    clock.now = at("UTC", 2026, 8, 4, 10)
    await track(client, tenant.id, "product_click", {"product": "tarta"},
                headers={"Referer": "https://tarta.example/", "User-Agent": "Mozilla/5.0 Raw"})
    await flush(app)
    await flush(app)
    rows = await pool.fetch("SELECT * FROM events WHERE tenant_id = $1", tenant.id)
    assert len(rows) == 1
    row = rows[0]
    assert row["event_type"] == "product_click"
    assert row["referrer"] == "https://tarta.example/"
    assert row["user_agent"] == "Mozilla/5.0 Raw"
    assert len(row["ip_hash"]) == 45 and "127.0.0.1" not in row["ip_hash"]
    assert row["occurred_at"] == dt.datetime(2026, 8, 4, 10, tzinfo=dt.UTC)
    # No column of any table holds the client address.
    for table in ("events", "daily_rollups"):
        dump = await pool.fetchval(f"SELECT string_agg(t::text, ' ') FROM {table} t")
        assert "127.0.0.1" not in (dump or "")


async def test_rebuild_agrees_with_raw_events_after_mixed_workload(app, client, pool, clock):
    from rollups.rebuild import rebuild

    tenant = await create_tenant(pool, "Rebuild", "America/Sao_Paulo")
    rng = random.Random(11)
    clock.now = at("America/Sao_Paulo", 2026, 9, 1, 20)
    kinds = ["pageview", "click_whatsapp", "click_call", "click_toggle_currency", "qr_scan",
             "product_click", "time_on_page"]
    for i in range(60):
        clock.now += rng.uniform(60, 4000)
        kind = rng.choice(kinds)
        metadata = {"seconds": round(rng.uniform(0, 900), 3)} if kind == "time_on_page" else None
        response = await track(client, tenant.id, kind, metadata, headers=visitor(i % 9))
        assert response.status_code == 200
        if i % 17 == 0:
            await flush(app)
    await flush(app)
    before = await pool.fetch(
        "SELECT * FROM daily_rollups WHERE tenant_id = $1 ORDER BY day", tenant.id)
    # Damage the rollups, then repair them from raw events.
    await pool.execute("UPDATE daily_rollups SET pageviews = pageviews + 5, events = 0 "
                       "WHERE tenant_id = $1", tenant.id)
    svc = app.extensions["analytics"]
    days = await rebuild(svc.redis, svc.pool, svc.keys, svc.scripts, tenant.id, tenant.timezone,
                         dt.date(2026, 9, 1), "tests")
    after = await pool.fetch(
        "SELECT * FROM daily_rollups WHERE tenant_id = $1 ORDER BY day", tenant.id)
    assert days == len(before) >= 2

    def strip(rows):
        return [{k: v for k, v in dict(r).items() if k != "updated_at"} for r in rows]

    assert strip(after) == strip(before)


async def test_retention_drops_whole_old_partitions_and_keeps_rollups(app, client, pool, clock):
    from rollups.retention import drop_expired

    tenant = await create_tenant(pool, "Old", "UTC")
    clock.now = at("UTC", 2024, 1, 15, 12)
    await track(client, tenant.id, "pageview")
    clock.now = at("UTC", 2026, 10, 15, 12)
    await track(client, tenant.id, "pageview")
    await flush(app)
    async with pool.acquire() as conn:
        dropped = await drop_expired(conn, dt.datetime(2026, 11, 26, tzinfo=dt.UTC), 400)
    assert "events_2024_01" in dropped
    assert "events_2026_10" not in dropped
    assert await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant.id) == 1
    assert await pool.fetchval(
        "SELECT sum(pageviews) FROM daily_rollups WHERE tenant_id = $1", tenant.id) == 2


async def test_entries_of_a_dead_consumer_are_claimed(app, client, pool, clock, redis, keys):
    from realtime.keys import DRAIN_GROUP
    from rollups.drain import drain_all, ensure_group

    tenant = await create_tenant(pool, "Orphans", "UTC")
    clock.now = at("UTC", 2026, 8, 5, 10)
    for n in range(4):
        await track(client, tenant.id, headers=visitor(n))
    shard = keys.shard_of(tenant.id)
    await ensure_group(redis, keys, shard)
    # A consumer on another host reads the entries and dies before inserting them.
    taken = await redis.xreadgroup(DRAIN_GROUP, "ghost-host", {keys.events(shard): ">"})
    assert sum(1 for _, f in taken[0][1] if orjson.loads(f[b"e"])["tenant"] == tenant.id) == 4
    svc = app.extensions["analytics"]
    await drain_all(svc.redis, svc.pool, svc.keys, svc.scripts, consumer="survivor",
                    reclaim_idle_ms=60_000)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant.id) == 0
    await drain_all(svc.redis, svc.pool, svc.keys, svc.scripts, consumer="survivor",
                    reclaim_idle_ms=0)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1", tenant.id) == 4
    pending = await redis.xpending(keys.events(shard), DRAIN_GROUP)
    assert pending["pending"] == 0


async def test_a_row_postgres_refuses_does_not_stall_its_shard(app, client, pool, clock, redis,
                                                                keys, caplog):
    tenant = await create_tenant(pool, "Poison", "UTC")
    clock.now = at("UTC", 2026, 8, 6, 10)
    await track(client, tenant.id, "pageview")
    # An entry no validation would let through (say, written by an older release).
    poisoned = orjson.dumps({"tenant": tenant.id, "type": "pageview", "ts": int(clock.now * 1000),
                             "meta": {}, "ua": "bad\u0000agent", "ref": "", "ip": "0" * 45})
    await redis.xadd(keys.events(keys.shard_of(tenant.id)), {"e": poisoned})
    await track(client, tenant.id, "qr_scan")
    await flush(app)
    types = sorted(r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM events WHERE tenant_id = $1", tenant.id))
    assert types == ["pageview", "qr_scan"]
    assert "not stored" in caplog.text
    pending = await redis.xpending(keys.events(keys.shard_of(tenant.id)), "drain")
    assert pending["pending"] == 0


async def test_a_deleted_tenant_does_not_stall_the_flush(app, client, pool, clock):
    gone = await create_tenant(pool, "Gone", "UTC")
    kept = await create_tenant(pool, "Kept", "UTC")
    clock.now = at("UTC", 2026, 8, 7, 10)
    await track(client, gone.id)
    await track(client, kept.id)
    await pool.execute("DELETE FROM tenants WHERE id = $1", gone.id)
    await flush(app)
    assert (await _count_rollups(pool, kept.id))["events"] == 1
    assert (await _count_rollups(pool, gone.id))["events"] == 0


async def test_a_deleted_tenant_takes_its_rollups_along(app, client, pool, clock):
    # Not by a foreign key (migration 0007): by the trigger on tenants.
    gone = await create_tenant(pool, "Gone", "UTC")
    kept = await create_tenant(pool, "Kept", "UTC")
    clock.now = at("UTC", 2026, 8, 7, 10)
    for tenant in (gone, kept):
        await track(client, tenant.id, metadata={"path": "/menu"})
    await flush(app)

    async def rows(tenant_id: int) -> tuple[int, int]:
        return (await pool.fetchval("SELECT count(*) FROM daily_rollups WHERE tenant_id = $1",
                                    tenant_id),
                await pool.fetchval("SELECT count(*) FROM breakdown_rollups WHERE tenant_id = $1",
                                    tenant_id))

    assert (await rows(gone.id))[0] == 1 and (await rows(gone.id))[1] > 1
    before = await rows(kept.id)
    await pool.execute("DELETE FROM tenants WHERE id = $1", gone.id)
    assert await rows(gone.id) == (0, 0)
    assert await rows(kept.id) == before


async def test_updated_rollups_keep_their_rows_on_their_pages(settings):
    # Migration 0008: rows the scheduler updates on every pass leave room on their page, so
    # an update writes no new index entry. In a database of its own, so that each table's
    # first page holds this test's rows alone.
    import asyncpg

    from app.ops.migrate import migrate
    from tests.support.settings import drop_database

    name = f"{settings.database_url.rsplit('/', 1)[1]}_pages"
    dsn = settings.database_url.rsplit("/", 1)[0] + f"/{name}"
    # Per table: rows 1..400 (several pages), the first of them, and an update as the
    # scheduler makes them (counters, sketches, a visitor's values: no key column).
    tables = {
        "breakdown_rollups": (
            "INSERT INTO breakdown_rollups (tenant_id, day, dimension, value, events) "
            "SELECT 1, '2026-08-07', 'page', '/p' || g, 1 FROM generate_series(1, 400) g",
            "value = '/p1'",
            "events = events + 1, visitors = visitors + 1"),
        "daily_rollups": (
            "INSERT INTO daily_rollups (tenant_id, day, events) "
            "SELECT 1, date '2020-01-01' + g, 1 FROM generate_series(1, 400) g",
            "day = '2020-01-02'",
            "events = events + 1, visitors_hll = '\\x00', updated_at = now()"),
        "breakdown_visitors": (
            "INSERT INTO breakdown_visitors (tenant_id, day, visitor, seen) "
            "SELECT 1, '2026-08-07', int4send(g), ARRAY['4:page/p' || g] "
            "FROM generate_series(1, 400) g",
            "visitor = int4send(1)",
            "seen = seen || '4:page/x'::text, lead = true"),
    }
    try:
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            for table, (fill, first, change) in tables.items():
                await conn.execute(fill)
                page = f"SELECT (ctid::text::point)[0]::int FROM {table} WHERE {first}"
                assert await conn.fetchval(page) == 0
                assert await conn.fetchval(
                    f"SELECT max((ctid::text::point)[0]) FROM {table}") >= 2
                await conn.execute(f"UPDATE {table} SET {change} WHERE {first}")
                assert await conn.fetchval(page) == 0, f"{table}: the update left its page"
        finally:
            await conn.close()
    finally:
        await drop_database(dsn)
