"""Breakdowns: exact visitors, events and leads per value of each dimension for small known
inputs, `(none)` and the `(other)` of the cap, leads attributed to the right source across
drain batches, replays counted once, one working-set row per visitor-day across drains and
its migration, rebuild, retention of the working sets, CSV, the export zip, and 400s; the
queue the drain leaves them in, counted once (a crash before the commit included), at the
scheduler's interval, and before a rebuild's recount."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io
import zipfile
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from app.routes import breakdowns as breakdown_routes
from realtime.generations import renew_rollups
from realtime.geo import Countries
from rollups import breakdown_queue, breakdowns, dimensions
from rollups.breakdown_queue import count_queue
from rollups.locks import Locking
from tests.support.apps import counting_queries, drain, flush
from tests.support.http import from_address

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
ANDROID = ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0 Mobile Safari/537.36")
WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0 Safari/537.36")
IPAD = ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1")
GB, BR, NOWHERE = "81.2.69.160", "200.147.3.157", "2001:db8::1"


def at(zone: str, *args) -> float:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone)).timestamp()


async def zoned_tenant(pool, zone: str = "UTC"):
    tenant = await create_tenant(pool, f"Breakdown {zone}", zone)
    _, token = await create_token(pool, tenant.id)
    return tenant, {"Authorization": f"Bearer {token}"}


async def send(client, tenant_id, event_type, metadata, *, agent, address, page=""):
    headers = {"Content-Type": "application/json", "User-Agent": agent}
    if page:
        headers["Referer"] = page
    response = await client.post(
        "/api/analytics/track", headers=headers, scope_base=from_address(address),
        data=orjson.dumps({"tenant_id": tenant_id, "event_type": event_type,
                           "metadata": metadata}))
    assert response.status_code == 200, await response.get_data()


async def get_breakdown(client, tenant_id, headers, dimension, **query):
    response = await client.get(f"/api/analytics/{tenant_id}/breakdown/{dimension}",
                                headers=headers, query_string=query)
    assert response.status_code == 200, await response.get_data()
    document = await response.get_json()
    assert document["success"] is True and document["data"]["dimension"] == dimension
    return document["data"]


def rows(data) -> list[tuple]:
    return [(r["value"], r["visitors"], r["events"], r["leads"]) for r in data["results"]]


async def four_visitors(app, client, tenant_id):
    """A (iPhone, GB) from Instagram with UTM, a lead in a later batch; B (Android, BR) from
    Google, two products; C (Windows, unknown country) calls and toggles the currency in one
    batch and views the page in the next; D (iPad, GB) comes from the site itself, then by QR."""
    await send(client, tenant_id, "pageview", {
        "path": "/", "referrer": "https://l.instagram.com/?u=x", "utm_source": "ig",
        "utm_medium": "social", "utm_campaign": "spring"}, agent=IPHONE, address=GB)
    await send(client, tenant_id, "pageview", {"path": "/menu",
                                               "referrer": "https://www.google.com.br/"},
               agent=ANDROID, address=BR)
    await send(client, tenant_id, "product_click", {"product": "latte"}, agent=ANDROID,
               address=BR)
    await send(client, tenant_id, "product_click", {"product_id": 42}, agent=ANDROID,
               address=BR)
    await send(client, tenant_id, "click_call", {}, agent=WINDOWS, address=NOWHERE)
    await send(client, tenant_id, "click_toggle_currency", {"currency": "EUR"}, agent=WINDOWS,
               address=NOWHERE)
    await send(client, tenant_id, "pageview", {"path": "/", "referrer": "https://cafe.example/x"},
               agent=IPAD, address=GB, page="https://cafe.example/")
    await send(client, tenant_id, "pageview", {"path": "/menu", "utm_medium": "qr"},
               agent=IPAD, address=GB, page="https://cafe.example/menu?utm_medium=qr")
    await flush(app)
    await send(client, tenant_id, "click_whatsapp", {"button_location": "hero"}, agent=IPHONE,
               address=GB)
    await send(client, tenant_id, "pageview", {"path": "/", "variant": "b"}, agent=WINDOWS,
               address=NOWHERE)
    await flush(app)


EXPECTED = {
    "source": [("Direct", 2, 2, 1), ("Google", 1, 1, 0), ("Instagram", 1, 1, 1),
               ("QR code", 1, 1, 0)],
    "page": [("/", 3, 3, 2), ("/menu", 2, 2, 0)],
    "referrer": [("(none)", 2, 3, 1), ("google.com.br", 1, 1, 0), ("l.instagram.com", 1, 1, 1)],
    "utm_source": [("(none)", 3, 4, 1), ("ig", 1, 1, 1)],
    "utm_medium": [("(none)", 3, 3, 1), ("qr", 1, 1, 0), ("social", 1, 1, 1)],
    "utm_campaign": [("(none)", 3, 4, 1), ("spring", 1, 1, 1)],
    "device": [("Mobile", 2, 5, 1), ("Desktop", 1, 3, 1), ("Tablet", 1, 2, 0)],
    "browser": [("Chrome", 2, 6, 1), ("Safari", 2, 4, 1)],
    "os": [("iOS", 2, 4, 1), ("Android", 1, 3, 0), ("Windows", 1, 3, 1)],
    "country": [("GB", 2, 4, 1), ("BR", 1, 3, 0), ("ZZ", 1, 3, 1)],
    "product": [("42", 1, 1, 0), ("latte", 1, 1, 0)],
    "button_location": [("(none)", 1, 1, 1), ("hero", 1, 1, 1)],
    "currency": [("EUR", 1, 1, 1)],
    "meta.variant": [("b", 1, 1, 1)],
}


async def test_exact_numbers_per_dimension(app, client, pool, clock):
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 10, 12)
    await four_visitors(app, client, tenant.id)
    for dimension, expected in EXPECTED.items():
        data = await get_breakdown(client, tenant.id, headers, dimension, period="today")
        assert rows(data) == expected, dimension
        assert data["other"] == {"visitors": 0, "events": 0, "leads": 0}
    data = await get_breakdown(client, tenant.id, headers, "meta.nothing", period="today")
    assert data["results"] == []
    # `limit`: the rest goes to `other`.
    data = await get_breakdown(client, tenant.id, headers, "source", period="today", limit=1)
    assert rows(data) == [("Direct", 2, 2, 1)]
    assert data["other"] == {"visitors": 3, "events": 3, "leads": 1}


async def test_visitors_per_value_are_distinct_per_day_and_summed_over_days(app, client, pool,
                                                                           clock):
    tenant, headers = await zoned_tenant(pool, "America/Sao_Paulo")
    for day in (3, 4):
        clock.now = at("America/Sao_Paulo", 2026, 9, day, 23, 30)  # UTC has the next day
        for _ in range(2):
            await send(client, tenant.id, "pageview", {"path": "/"}, agent=IPHONE, address=BR)
        await flush(app)
    clock.now = at("America/Sao_Paulo", 2026, 9, 5, 10)
    data = await get_breakdown(client, tenant.id, headers, "page")
    assert rows(data) == [("/", 2, 4, 0)]
    data = await get_breakdown(client, tenant.id, headers, "page", period="custom",
                               **{"from": "2026-09-04", "to": "2026-09-04"})
    assert rows(data) == [("/", 1, 2, 0)]


async def test_values_past_the_cap_count_under_other(app, client, pool, clock):
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 11, 12)

    for n, path in enumerate(["/a", "/b", "/c", "/d", "/c"]):
        await send(client, tenant.id, "pageview", {"path": path}, agent=f"{WINDOWS} v{n}",
                   address=GB)
    await drain(app, breakdown_cap=2)
    # A value already kept stays kept; any new one still goes to (other).
    await send(client, tenant.id, "pageview", {"path": "/a"}, agent=WINDOWS, address=BR)
    await send(client, tenant.id, "pageview", {"path": "/e"}, agent=WINDOWS, address=BR)
    await drain(app, breakdown_cap=2)
    data = await get_breakdown(client, tenant.id, headers, "page", period="today")
    assert rows(data) == [("(other)", 4, 4, 0), ("/a", 2, 2, 0), ("/b", 1, 1, 0)]
    # The other dimensions are capped on their own.
    data = await get_breakdown(client, tenant.id, headers, "country", period="today")
    assert rows(data) == [("GB", 5, 5, 0), ("BR", 1, 2, 0)]


async def pages_in_drains(app, client, tenant_id, paths, *, cap, bounds) -> None:
    """Each path a page view in a drain of its own, with `bounds` carried across them."""
    for n, path in enumerate(paths):
        await send(client, tenant_id, "pageview", {"path": path}, agent=f"{WINDOWS} v{n}",
                   address=GB)
        await drain(app, breakdown_cap=cap, bounds=bounds)


async def test_bounds_carried_across_drains_keep_the_cap(app, client, pool, clock, keys):
    # cap 3: /b and /c fit the bound the drain keeps and are not counted again; /d would
    # take the page group past it, so the group is counted, and /d goes to (other).
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 11, 12)
    bounds: dict[int, breakdowns.Bounds] = {}
    await pages_in_drains(app, client, tenant.id, ["/a", "/b", "/c", "/d", "/a"], cap=3,
                          bounds=bounds)
    data = await get_breakdown(client, tenant.id, headers, "page", period="today")
    assert rows(data) == [("/a", 2, 2, 0), ("(other)", 1, 1, 0), ("/b", 1, 1, 0),
                          ("/c", 1, 1, 0)]
    group = (tenant.id, dt.date(2026, 9, 11), "page")
    assert bounds[keys.shard_of(tenant.id)].sizes[group] == 3


async def test_a_drain_trusts_its_bounds_without_counting(app, client, pool, clock, keys):
    # The bound of a group the drain counted into last is not checked against Postgres:
    # told (wrongly) that the group is empty, the drain lets /b past a cap of 1.
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 11, 12)
    bounds: dict[int, breakdowns.Bounds] = {}
    await pages_in_drains(app, client, tenant.id, ["/a"], cap=1, bounds=bounds)
    bounds[keys.shard_of(tenant.id)].sizes[(tenant.id, dt.date(2026, 9, 11), "page")] = 0
    await pages_in_drains(app, client, tenant.id, ["/b"], cap=1, bounds=bounds)
    data = await get_breakdown(client, tenant.id, headers, "page", period="today")
    assert rows(data) == [("/a", 1, 1, 0), ("/b", 1, 1, 0)]


async def test_a_count_by_anyone_else_voids_a_drains_bounds(app, client, pool, clock, keys):
    # cap 2. A drainer counts /a (its bound: 1). Another process's drain counts /b (size 2).
    # The first drainer's bound would let /c in; it finds the shard marked by the other, so
    # it counts the group again, and /c goes to (other).
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 11, 12)
    ours: dict[int, breakdowns.Bounds] = {}
    await pages_in_drains(app, client, tenant.id, ["/a"], cap=2, bounds=ours)
    await pages_in_drains(app, client, tenant.id, ["/b"], cap=2, bounds={})
    await pages_in_drains(app, client, tenant.id, ["/c"], cap=2, bounds=ours)
    data = await get_breakdown(client, tenant.id, headers, "page", period="today")
    assert rows(data) == [("(other)", 1, 1, 0), ("/a", 1, 1, 0), ("/b", 1, 1, 0)]


async def test_bounds_keep_the_groups_of_the_last_batch_past_their_limit(app, client, pool,
                                                                        clock, keys,
                                                                        monkeypatch):
    # A limit of 12 groups: a day's page view makes about 10, so the second day's batch
    # leaves the first day's out.
    monkeypatch.setattr(breakdowns, "MAX_BOUNDS", 12)
    tenant, _ = await zoned_tenant(pool)
    bounds: dict[int, breakdowns.Bounds] = {}
    days = []
    for day in (11, 12):
        clock.now = at("UTC", 2026, 9, day, 12)
        await pages_in_drains(app, client, tenant.id, ["/a"], cap=5, bounds=bounds)
        days.append({group[1] for group in bounds[keys.shard_of(tenant.id)].sizes})
    assert days == [{dt.date(2026, 9, 11)}, {dt.date(2026, 9, 12)}]


async def test_every_count_marks_the_shards_it_counts_into(app, pool, clock, keys):
    # A rebuild counts with no bounds of its own: it still marks the shard, so a drainer's
    # bounds from before it no longer hold.
    from realtime import stream
    from rollups import drain as drains

    tenant, _ = await zoned_tenant(pool)
    shard = keys.shard_of(tenant.id)
    when = int(at("UTC", 2026, 9, 11, 12) * 1000)
    record = drains.to_record(shard, f"{when}-0".encode(), {stream.FIELD: stream.encode(
        stream.RawEvent(tenant.id, "pageview", when, {"path": "/"}, IPHONE, "", "h" * 45))})
    mark = "SELECT writer FROM breakdown_writers WHERE shard = $1"
    async with pool.acquire() as conn:
        await drains.ensure_partitions(conn, {dt.date(2026, 9, 1)})
        await conn.execute(drains.STAGING_SQL)
        before = await conn.fetchval(mark, shard)
        async with conn.transaction():
            await conn.copy_records_to_table("events_staging", records=[record],
                                             columns=drains.COLUMNS)
            await conn.execute(drains.INSERT_SQL)
            assert await breakdown_queue.count_chunk(conn) == (1, {tenant.id})
        after = await conn.fetchval(mark, shard)
    assert after is not None and after != before


async def test_a_count_renews_the_breakdowns_processes_serve(app, client, pool, clock):
    """A breakdown is served from the process under the tenant's rollups generation, each
    period asked with its own answer, until the tenant's stored events are counted: the
    count renews the generation, and the next read has them."""
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 13, 12)
    await send(client, tenant.id, "pageview", {"path": "/old"}, agent=IPHONE, address=GB)
    await flush(app)
    clock.now = at("UTC", 2026, 9, 14, 12)
    await send(client, tenant.id, "pageview", {"path": "/a"}, agent=IPHONE, address=GB)
    await flush(app)
    for _ in range(3):  # the first starts the generation, the second fills the cache
        data = await get_breakdown(client, tenant.id, headers, "page", period="today")
        assert rows(data) == [("/a", 1, 1, 0)]
        data = await get_breakdown(client, tenant.id, headers, "page", period="yesterday")
        assert rows(data) == [("/old", 1, 1, 0)]
    await send(client, tenant.id, "pageview", {"path": "/b"}, agent=ANDROID, address=BR)
    # The drain and its count alone: the flush renews the generation too.
    assert await drain(app) == 1
    data = await get_breakdown(client, tenant.id, headers, "page", period="today")
    assert rows(data) == [("/a", 1, 1, 0), ("/b", 1, 1, 0)]


async def test_breakdowns_asked_together_after_a_renewal_make_one_read(app, client, pool,
                                                                       clock, monkeypatch):
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 15, 12)
    await send(client, tenant.id, "pageview", {"path": "/a"}, agent=IPHONE, address=GB)
    await flush(app)
    for _ in range(2):  # the generations start, the bearer token is confirmed
        await get_breakdown(client, tenant.id, headers, "page", period="7d")
    svc = app.extensions["analytics"]
    await renew_rollups(svc.scripts, svc.keys, [tenant.id])
    with counting_queries(app) as one:
        await get_breakdown(client, tenant.id, headers, "page", period="7d")
    assert one.queries > 0
    await renew_rollups(svc.scripts, svc.keys, [tenant.id])
    # The read waits until all six requests have looked in the cache, so they surely miss
    # together: a read done before the last had looked would serve it from the cache, and
    # reads that are not shared would go unseen.
    looked, everyone_looked, look = 0, asyncio.Event(), svc.period_reads.get

    def counted_look(key, generation):
        nonlocal looked
        looked += 1
        if looked == 6:
            everyone_looked.set()
        return look(key, generation)

    async def held_read(*args, **kwargs):
        await asyncio.wait_for(everyone_looked.wait(), 10)
        return await breakdowns.breakdown(*args, **kwargs)

    monkeypatch.setattr(svc.period_reads, "get", counted_look)
    monkeypatch.setattr(breakdown_routes, "breakdown", held_read)
    with counting_queries(app) as together:
        answers = await asyncio.gather(*(get_breakdown(client, tenant.id, headers, "page",
                                                       period="7d", limit=n)
                                         for n in range(1, 7)))
    assert looked == 6
    assert together.queries == one.queries
    assert [rows(data) for data in answers] == [[("/a", 1, 1, 0)]] * 6
    assert not svc.rollup_reads_running


async def test_a_replayed_batch_counts_nothing_twice(app, client, pool, clock):
    from realtime import stream
    from rollups import drain
    from tests.support.apps import drain as drain_now

    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 12, 12)
    when = int(clock.now * 1000)
    records = [drain.to_record(0, f"{when}-{n}".encode(), {stream.FIELD: stream.encode(
        stream.RawEvent(tenant.id, event_type, when, {"path": "/"}, IPHONE, "", "h" * 45, "GB"))})
        for n, event_type in enumerate(["pageview", "click_whatsapp"])]
    async with pool.acquire() as conn:
        await drain.ensure_partitions(conn, {dt.date(2026, 9, 1)})
        assert await drain._insert(conn, records) == 2
        assert await drain._insert(conn, records) == 0  # as after a crash before the XACK
    await drain_now(app)  # counts the queue
    data = await get_breakdown(client, tenant.id, headers, "country", period="today")
    assert rows(data) == [("GB", 1, 2, 1)]


async def test_rebuild_reproduces_the_breakdowns(app, client, pool, clock, redis, keys):
    from rollups.rebuild import rebuild

    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 13, 12)
    await four_visitors(app, client, tenant.id)
    query = ("SELECT day, dimension, value, events, visitors, leads FROM breakdown_rollups "
             "WHERE tenant_id = $1 ORDER BY 1, 2, 3")
    before = [tuple(r) for r in await pool.fetch(query, tenant.id)]
    assert len(before) > 20
    await pool.execute("UPDATE breakdown_rollups SET events = 999, leads = 0 WHERE tenant_id = $1",
                       tenant.id)
    svc = app.extensions["analytics"]
    await rebuild(redis, pool, keys, svc.scripts, tenant.id, "UTC", dt.date(2026, 9, 13),
                  "tests")
    assert [tuple(r) for r in await pool.fetch(query, tenant.id)] == before
    for dimension, expected in EXPECTED.items():
        data = await get_breakdown(client, tenant.id, headers, dimension, period="today")
        assert rows(data) == expected, dimension


async def test_a_rebuild_in_many_batches_reproduces_the_breakdowns(app, client, pool, clock,
                                                                   redis, keys, monkeypatch):
    from rollups import rebuild

    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 19, 12)
    await four_visitors(app, client, tenant.id)
    monkeypatch.setattr(rebuild, "RECOUNT_CHUNK", 3)  # one transaction, four batches
    await rebuild.rebuild(redis, pool, keys, app.extensions["analytics"].scripts, tenant.id,
                          "UTC", dt.date(2026, 9, 19), "tests")
    for dimension, expected in EXPECTED.items():
        data = await get_breakdown(client, tenant.id, headers, dimension, period="today")
        assert rows(data) == expected, dimension


async def test_retention_forgets_the_visitors_of_days_over(app, client, pool, clock):
    from rollups.retention import drop_expired

    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 14, 12)
    await send(client, tenant.id, "click_whatsapp", {}, agent=IPHONE, address=GB)
    await flush(app)
    count = "SELECT count(*) FROM {} WHERE tenant_id = $1"
    assert await pool.fetchval(count.format("breakdown_visitors"), tenant.id) > 0
    assert await pool.fetchval(count.format("lead_visitors"), tenant.id) == 1
    async with pool.acquire() as conn:
        await drop_expired(conn, dt.datetime(2026, 9, 15, 23, tzinfo=dt.UTC), 400)
        assert await pool.fetchval(count.format("lead_visitors"), tenant.id) == 1
        await drop_expired(conn, dt.datetime(2026, 9, 16, 0, 1, tzinfo=dt.UTC), 400)
    assert await pool.fetchval(count.format("breakdown_visitors"), tenant.id) == 0
    assert await pool.fetchval(count.format("lead_visitors"), tenant.id) == 0
    data = await get_breakdown(client, tenant.id, headers, "device", period="custom",
                               **{"from": "2026-09-14", "to": "2026-09-14"})
    assert rows(data) == [("Mobile", 1, 1, 1)]  # the counts stay


async def test_breakdown_csv_and_the_export_zip(app, client, pool, clock):
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 15, 12)
    await send(client, tenant.id, "pageview", {"path": "=cmd()", "referrer": "https://t.co/x"},
               agent=IPHONE, address=GB)
    await flush(app)
    response = await client.get(f"/api/analytics/{tenant.id}/breakdown/page", headers=headers,
                                query_string={"format": "csv", "period": "today"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO((await response.get_data()).decode())))
    assert table == [["value", "visitors", "events", "leads"], ["'=cmd()", "1", "1", "0"]]

    response = await client.get(f"/api/analytics/{tenant.id}/export", headers=headers,
                                query_string={"period": "7d"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(await response.get_data()))
    names = set(archive.namelist())
    assert {"series.csv", "breakdown-page.csv", "breakdown-source.csv",
            "breakdown-country.csv"} <= names
    series = list(csv.reader(io.StringIO(archive.read("series.csv").decode())))
    assert series[0] == ["date", "visitors", "pageviews", "leads"]
    assert series[-1] == ["2026-09-15", "1", "1", "0"] and len(series) == 8
    assert archive.read("breakdown-source.csv").decode().splitlines() == [
        "value,visitors,events,leads", "X,1,1,0"]


@pytest.mark.parametrize(("path", "query", "message"), [
    ("breakdown/planet", {}, "unknown dimension"),
    ("breakdown/meta.", {}, "unknown dimension"),
    ("breakdown/page", {"limit": "0"}, "`limit` must be from 1 to 100"),
    ("breakdown/page", {"limit": "101"}, "`limit` must be from 1 to 100"),
    ("breakdown/page", {"limit": "ten"}, "`limit` must be a whole number"),
    ("breakdown/page", {"period": "custom", "from": "2026-02-01", "to": "2026-01-01"},
     "`from` is after `to`"),
    ("breakdown/page", {"period": "custom", "from": "2024-01-01", "to": "2026-01-01"},
     "at most 400 days"),
    ("breakdown/page", {"format": "xlsx"}, "unknown format"),
    ("export", {"period": "fortnight"}, "unknown period"),
    ("export", {"period": "custom", "from": "2026-01-01"}, "needs `to`"),
])
async def test_bad_queries_get_400_with_a_message(client, tenant, auth_headers, path, query,
                                                message):
    response = await client.get(f"/api/analytics/{tenant.id}/{path}", headers=auth_headers,
                                query_string=query)
    assert response.status_code == 400
    document = await response.get_json()
    assert document["success"] is False and message in document["error"]


@pytest.mark.parametrize(("address", "country"), [
    (GB, "GB"), (BR, "BR"), ("8.8.8.8", "US"), ("2804:14c::1", "BR"), (NOWHERE, "ZZ"),
    ("127.0.0.1", "ZZ"), ("", "ZZ"), ("not an address", "ZZ"),
])
def test_country_of_an_address(address, country):
    assert Countries.load().country(address) == country


def test_a_missing_country_database_gives_unknown():
    assert Countries(None).country(GB) == "ZZ"


@pytest.mark.parametrize(("referrer", "page", "expected"), [
    ("https://www.google.com/", "", "Google"), ("https://google.co.uk/search", "", "Google"),
    ("https://mail.google.com/mail/u/0", "", "Email"), ("https://m.facebook.com/", "", "Facebook"),
    ("https://l.instagram.com/?u=1", "", "Instagram"),
    ("https://web.whatsapp.com/", "", "WhatsApp"),
    ("https://t.co/abc", "", "X"), ("https://news.example.org/a", "", "news.example.org"),
    ("https://shop.example/a", "https://shop.example/b", "Direct"), ("", "", "Direct"),
    ("not a url at all", "", "not a url at all"),
])
def test_sources_of_referrers(referrer, page, expected):
    event = dimensions.Event("pageview", {"referrer": referrer}, "", page, "ZZ")
    assert dimensions.source(event) == expected


def test_the_feed_line_of_an_event():
    assert dimensions.describe(IPHONE, "https://l.instagram.com/", "") == \
        "iPhone · Safari · from Instagram"
    assert dimensions.describe(WINDOWS, "", "") == "Desktop · Chrome"
    assert dimensions.describe("", "", "") == ""


def test_every_dimension_is_read_by_some_event_type():
    from realtime.event_types import EVENT_TYPES

    named = {name for t in EVENT_TYPES for name in t.dimensions}
    assert named <= set(dimensions.BY_NAME)
    assert all(d.every or d.name in named for d in dimensions.DIMENSIONS)


async def test_the_feed_says_who_sent_each_event(app, client, pool, clock):
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 16, 12)
    await send(client, tenant.id, "pageview", {"path": "/", "referrer": "https://l.instagram.com/"},
               agent=IPHONE, address=GB)
    response = await client.get(f"/api/analytics/{tenant.id}/events", headers=headers)
    [event] = (await response.get_json())["events"]
    assert event["visitor"] == "iPhone · Safari · from Instagram"


async def test_one_working_set_row_per_visitor_day_across_drains(app, client, pool, clock):
    # drain 1  /a
    # drain 2  /a /b         /a is not a new visitor, /b is
    # drain 3  /b  + lead    /b is not new; the lead goes to /a and /b
    # drain 4  /c            a lead already: /c gets the lead at once
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 17, 12)
    for batch in (["/a"], ["/a", "/b"], ["/b", "lead"], ["/c"]):
        for path in batch:
            if path == "lead":
                await send(client, tenant.id, "click_whatsapp", {}, agent=IPHONE, address=GB)
            else:
                await send(client, tenant.id, "pageview", {"path": path}, agent=IPHONE,
                           address=GB)
        await flush(app)
    data = await get_breakdown(client, tenant.id, headers, "page", period="today")
    assert rows(data) == [("/a", 1, 2, 1), ("/b", 1, 2, 1), ("/c", 1, 1, 1)]
    data = await get_breakdown(client, tenant.id, headers, "device", period="today")
    assert rows(data) == [("Mobile", 1, 6, 1)]
    [row] = await pool.fetch("SELECT seen, lead FROM breakdown_visitors WHERE tenant_id = $1",
                             tenant.id)
    assert row["lead"] is True
    assert {breakdowns.pair(k) for k in row["seen"]} >= {
        ("page", "/a"), ("page", "/b"), ("page", "/c"), ("device", "Mobile"),
        ("button_location", "(none)")}
    assert len(row["seen"]) == len(set(row["seen"]))


@pytest.mark.parametrize(("dimension", "value"), [
    ("page", "/a"), ("meta.x:1", "y"), ("meta.x", ":1y"), ("country", ""), ("p", "12:q")])
def test_a_key_gives_back_its_pair(dimension, value):
    assert breakdowns.pair(breakdowns.key(dimension, value)) == (dimension, value)


async def test_the_migration_carries_the_days_working_sets_over(settings):
    """Rows of the working sets before 0006 (one per value, leads apart) become one row per
    visitor-day, and the drain goes on counting the day from them exactly."""
    from app.ops.migrate import migrations
    from tests.support.settings import ADMIN_DSN, drop_database

    name = f"{settings.database_url.rsplit('/', 1)[1]}_m6"
    dsn = settings.database_url.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn)
    try:
        later = []
        for number, _, sql in migrations():
            if number < 6:
                await conn.execute(sql)
            else:
                later.append(sql)
        tenant_id = await conn.fetchval(
            "INSERT INTO tenants (name, timezone) VALUES ('m', 'UTC') RETURNING id")
        day = dt.date(2026, 9, 18)
        seen, lead_only = breakdowns.visitor_of("h1", IPHONE), breakdowns.visitor_of("h2", IPHONE)
        await conn.executemany(
            "INSERT INTO breakdown_visitors (tenant_id, day, dimension, value, visitor) "
            "VALUES ($1, $2, $3, $4, $5)",
            [(tenant_id, day, "page", "/a", seen), (tenant_id, day, "country", "GB", seen)])
        await conn.execute("INSERT INTO lead_visitors VALUES ($1, $2, $3)", tenant_id, day,
                           lead_only)
        await conn.executemany(
            "INSERT INTO breakdown_rollups (tenant_id, day, dimension, value, events, visitors) "
            "VALUES ($1, $2, $3, $4, 1, 1)",
            [(tenant_id, day, "page", "/a"), (tenant_id, day, "country", "GB")])
        for sql in later:
            await conn.execute(sql)

        rows_now = {r["visitor"]: (sorted(r["seen"]), r["lead"]) for r in await conn.fetch(
            "SELECT visitor, seen, lead FROM breakdown_visitors WHERE tenant_id = $1",
            tenant_id)}
        assert rows_now == {
            seen: (sorted([breakdowns.key("page", "/a"), breakdowns.key("country", "GB")]),
                   False),
            lead_only: ([], True)}
        assert await conn.fetchval("SELECT count(*) FROM lead_visitors") == 1

        # The visitor seen under /a before the upgrade views /a again, then calls.
        when = dt.datetime(2026, 9, 18, 12, tzinfo=dt.UTC)
        event = ("SELECT $1::bigint AS tenant_id, $2::text AS event_type, "
                 "$3::timestamptz AS occurred_at, $4::jsonb AS metadata, $5::text AS user_agent, "
                 "''::text AS referrer, 'h1'::text AS ip_hash, 'GB'::text AS country")
        async with conn.transaction():
            await breakdowns.count(conn, [await conn.fetchrow(
                event, tenant_id, "pageview", when, '{"path": "/a"}', IPHONE)])
        async with conn.transaction():
            await breakdowns.count(conn, [await conn.fetchrow(
                event, tenant_id, "click_call", when, "{}", IPHONE)])
        counts = {(r["dimension"], r["value"]): (r["visitors"], r["events"], r["leads"])
                  for r in await conn.fetch(
                      "SELECT dimension, value, visitors, events, leads FROM breakdown_rollups "
                      "WHERE tenant_id = $1", tenant_id)}
        assert counts[("page", "/a")] == (1, 2, 1)
        assert counts[("country", "GB")] == (1, 3, 1)
        assert counts[("source", "Direct")] == (1, 1, 1)
    finally:
        await conn.close()
        await drop_database(dsn)


HOSTILE_VALUES = ["/menu", "", " spaced ", "a,b", "{braced}", "}", "{", ",", '"', '"quoted"',
                  "back\\slash", '\\"', "ends\\", "NULL", "null", "it's", "ünï€😀", "\t\n"]


async def test_the_text_of_a_visits_keys_reads_back_as_the_keys(pool):
    # The drain stages a visit's keys as the text of an array (breakdowns.array_text): any
    # page, product or campaign a site sends must come back as it went in, one element each.
    assert await pool.fetchval("SELECT $1::text::text[]",
                               breakdowns.array_text(HOSTILE_VALUES)) == HOSTILE_VALUES
    for value in HOSTILE_VALUES:
        assert await pool.fetchval("SELECT $1::text::text[]",
                                   breakdowns.array_text([value])) == [value]
    assert await pool.fetchval("SELECT $1::text::text[]", breakdowns.array_text([])) == []


async def queued(pool, tenant_id) -> int:
    return await pool.fetchval("SELECT count(*) FROM breakdown_queue WHERE tenant_id = $1",
                               tenant_id)


async def test_the_drain_queues_what_it_stores_and_a_count_takes_it_once(app, client, pool,
                                                                         clock):
    svc = app.extensions["analytics"]
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 21, 12)
    for n, path in enumerate(["/a", "/b", "/a"]):
        await send(client, tenant.id, "pageview", {"path": path}, agent=f"{WINDOWS} v{n}",
                   address=GB)
    assert await drain(app, count_breakdowns=False) >= 3
    assert await queued(pool, tenant.id) == 3
    for _ in range(2):  # the first starts the generation, the second fills the cache
        assert rows(await get_breakdown(client, tenant.id, headers, "page",
                                        period="today")) == []
    # The count renews the generation the empty answer is cached under.
    assert await count_queue(svc.pool, svc.scripts, svc.keys, locking=Locking.WAIT) >= 3
    assert await queued(pool, tenant.id) == 0
    expected = [("/a", 2, 2, 0), ("/b", 1, 1, 0)]
    assert rows(await get_breakdown(client, tenant.id, headers, "page", period="today")) \
        == expected
    await count_queue(svc.pool, svc.scripts, svc.keys, locking=Locking.WAIT)
    assert rows(await get_breakdown(client, tenant.id, headers, "page", period="today")) \
        == expected


async def test_a_count_goes_on_a_chunk_at_a_time_until_the_queue_is_empty(app, client, pool,
                                                                          clock):
    svc = app.extensions["analytics"]
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 21, 13)
    for n in range(5):
        await send(client, tenant.id, "pageview", {"path": "/a"}, agent=f"{WINDOWS} v{n}",
                   address=GB)
    await drain(app, count_breakdowns=False)
    await count_queue(svc.pool, svc.scripts, svc.keys, locking=Locking.WAIT, limit=2)
    assert await queued(pool, tenant.id) == 0
    assert rows(await get_breakdown(client, tenant.id, headers, "page", period="today")) \
        == [("/a", 5, 5, 0)]


async def test_a_count_that_fails_before_its_commit_leaves_its_events_queued(app, client,
                                                                             pool, clock):
    svc = app.extensions["analytics"]
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 22, 12)
    await send(client, tenant.id, "pageview", {"path": "/a"}, agent=IPHONE, address=GB)
    await send(client, tenant.id, "click_whatsapp", {}, agent=IPHONE, address=GB)
    await drain(app, count_breakdowns=False)

    def crash(step: str) -> None:
        if step == "counted":
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        await count_queue(svc.pool, svc.scripts, svc.keys, locking=Locking.WAIT, fault=crash)
    assert await queued(pool, tenant.id) == 2
    assert await pool.fetchval("SELECT count(*) FROM breakdown_rollups WHERE tenant_id = $1",
                               tenant.id) == 0
    await count_queue(svc.pool, svc.scripts, svc.keys, locking=Locking.WAIT)
    assert rows(await get_breakdown(client, tenant.id, headers, "country", period="today")) \
        == [("GB", 1, 2, 1)]


async def test_the_scheduler_counts_the_queue_at_its_interval_and_a_flush_at_once(
        settings, app, client, pool, clock):
    from app.clients import Clients
    from app.ops.scheduler import Worker

    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 23, 12)
    now = [0.0]
    clients = await Clients.open(dataclasses.replace(settings, breakdown_interval=30.0))
    worker = Worker(clients, monotonic=lambda: now[0])
    try:
        waiting = []
        for now[0], path in [(0.0, "/a"), (5.0, "/b"), (29.9, "/c"), (30.0, "/d")]:
            await send(client, tenant.id, "pageview", {"path": path}, agent=IPHONE, address=GB)
            await worker.tick()
            waiting.append(await queued(pool, tenant.id))
        # Drained every pass; counted at the first and then once 30 s had gone by.
        assert waiting == [0, 1, 2, 0]
        assert await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = $1",
                                   tenant.id) == 4
        await send(client, tenant.id, "pageview", {"path": "/e"}, agent=IPHONE, address=GB)
        await worker.flush(Locking.WAIT)  # as `analytics flush`
        assert await queued(pool, tenant.id) == 0
    finally:
        await clients.close()
    data = await get_breakdown(client, tenant.id, headers, "page", period="today")
    assert sorted(rows(data)) == [(path, 1, 1, 0) for path in ["/a", "/b", "/c", "/d", "/e"]]


async def test_a_rebuild_counts_the_queue_before_it_recounts(app, client, pool, clock, redis,
                                                            keys):
    # The rebuild's own drain queues the events; counted after the recount instead of
    # before it, they would be counted twice.
    from rollups.rebuild import rebuild

    svc = app.extensions["analytics"]
    tenant, headers = await zoned_tenant(pool)
    clock.now = at("UTC", 2026, 9, 24, 12)
    for n in range(2):
        await send(client, tenant.id, "pageview", {"path": "/a"}, agent=f"{WINDOWS} v{n}",
                   address=GB)
    await rebuild(redis, pool, keys, svc.scripts, tenant.id, "UTC", dt.date(2026, 9, 24),
                  "tests")
    await count_queue(svc.pool, svc.scripts, svc.keys, locking=Locking.WAIT)
    assert rows(await get_breakdown(client, tenant.id, headers, "page", period="today")) \
        == [("/a", 2, 2, 0)]
