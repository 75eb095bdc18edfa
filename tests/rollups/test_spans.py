"""Spans (rollups.spans): runs of days taken together give the same /stats and breakdowns as
the days one by one, and a write to a day of a built span (a late flush, the drain, rebuild)
is never hidden by it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from rollups import spans
from rollups.periods import closed_parts
from tests.support.apps import drain, flush
from tests.support.http import track, visitor

ZONE = "America/Sao_Paulo"
DAY = 86_400
READS = [
    ("stats", {"period": "30d"}), ("stats", {"period": "12mo"}),
    ("stats", {"period": "custom", "from": "2026-08-03", "to": "2026-09-12"}),
    ("breakdown/page", {"period": "30d", "limit": "2"}),
    ("breakdown/source", {"period": "12mo"}),
    ("breakdown/device", {"period": "custom", "from": "2026-08-20", "to": "2026-09-12"}),
]


def at(*args) -> float:
    return dt.datetime(*args, tzinfo=ZoneInfo(ZONE)).timestamp()


def _blocks(first: dt.date, last: dt.date) -> set[spans.Span]:
    """Every block (2, 4, ... 256 days, aligned on the day number) within first..last."""
    found = set()
    for level in range(1, spans.MAX_LEVEL + 1):
        size = 1 << level
        start = first.toordinal() + (-first.toordinal()) % size
        while start + size - 1 <= last.toordinal():
            found.add((dt.date.fromordinal(start), dt.date.fromordinal(start + size - 1)))
            start += size
    return found


@settings(deadline=None)  # a pure function, but on machines shared with other work
@given(st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)), st.integers(0, 800),
       st.sets(st.integers(0, 1000), max_size=40),
       st.lists(st.tuples(st.integers(-50, 850), st.integers(1, 400)), max_size=5),
       st.booleans())
def test_pieces_cover_each_day_once_with_built_spans_only(first, length, drop, others,
                                                          all_built):
    last = first + dt.timedelta(days=length)
    every = sorted(_blocks(first - dt.timedelta(days=300), last + dt.timedelta(days=300)))
    assert all(spans.is_block(b) for b in every)
    built = set(every) if all_built else {s for i, s in enumerate(every) if i not in drop}
    built |= {(first + dt.timedelta(days=a), first + dt.timedelta(days=a + n))
              for a, n in others}  # the named periods' runs: any length, anywhere
    parts, days = spans.pieces(first, last, built)
    covered = [*days]
    for span in parts:
        assert span in built
        covered += [span[0] + dt.timedelta(days=i) for i in range((span[1] - span[0]).days + 1)]
    assert sorted(covered) == [first + dt.timedelta(days=i) for i in range(length + 1)]
    if all_built:  # a few pieces at each end of each level, whatever the length
        assert len(parts) + len(days) <= 2 * (spans.MAX_LEVEL + 1) + length // 256


async def _tenant(pool):
    tenant = await create_tenant(pool, "Spans", ZONE)
    _, token = await create_token(pool, tenant.id)
    return tenant, {"Authorization": f"Bearer {token}"}


async def _visit(client, tenant_id, n, *types, page="/"):
    for event_type in types:
        metadata = {"path": page} if event_type == "pageview" else None
        response = await track(client, tenant_id, event_type, metadata, headers=visitor(n))
        assert response.status_code == 200, await response.get_data()


async def _reads(client, tenant_id, headers) -> list:
    answers = []
    for path, query in READS:
        response = await client.get(f"/api/analytics/{tenant_id}/{path}", headers=headers,
                                    query_string=query)
        assert response.status_code == 200, await response.get_data()
        answers.append((await response.get_json())["data"])
    return answers


async def _month(app, client, pool, clock):
    """Six weeks of visits: visitor n on days n % 7 .. of each week, some of them leads."""
    tenant, headers = await _tenant(pool)
    for day in range(42):
        clock.now = at(2026, 8, 1, 10) + day * DAY
        for n in range(day % 5, day % 5 + 3):
            await _visit(client, tenant.id, n, "pageview", page=f"/p{(n + day) % 4}")
        if day % 3 == 0:
            await _visit(client, tenant.id, day % 5, "click_whatsapp")
        await flush(app)
    clock.now = at(2026, 9, 12, 15)
    return tenant, headers


def _page_events(answers) -> int:
    page = answers[3]
    return sum(r["events"] for r in page["results"]) + page["other"]["events"]


async def _spans_of(pool, tenant_id) -> set[spans.Span]:
    return await spans.built(pool, tenant_id, dt.date.min, dt.date.max)


async def _days_only(client, pool, tenant_id, headers):
    async with pool.acquire() as conn:
        saved = {t: await conn.fetch(f"SELECT * FROM {t} WHERE tenant_id = $1", tenant_id)
                 for t in ("rollup_spans", "breakdown_spans")}
        for table in saved:
            await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id)
    answers = await _reads(client, tenant_id, headers)
    async with pool.acquire() as conn:
        for table, records in saved.items():
            if records:
                await conn.copy_records_to_table(table, records=[tuple(r) for r in records],
                                                 columns=list(records[0].keys()))
    return answers


async def test_reads_from_spans_equal_reads_from_days(app, client, pool, clock):
    tenant, headers = await _month(app, client, pool, clock)
    from_days = await _reads(client, tenant.id, headers)
    svc = app.extensions["analytics"]
    assert await spans.build_all(pool, svc.scripts, svc.keys, clock.now, closed_parts) > 20
    built = await _spans_of(pool, tenant.id)
    # Only days that are over (up to the local yesterday, the 11th) are in spans: blocks,
    # whole months, and the named periods' days before today (30d: the 29 before today).
    assert max(last for _, last in built) == dt.date(2026, 9, 11)
    assert {(dt.date(2026, 8, 12), dt.date(2026, 8, 27)), (dt.date(2026, 8, 1),
            dt.date(2026, 8, 31)), (dt.date(2026, 8, 14), dt.date(2026, 9, 11))} <= built
    assert await _reads(client, tenant.id, headers) == from_days
    assert from_days[0]["totals"]["visitors"] == 7  # visitors 0..6, each once
    assert not await spans.build_all(pool, svc.scripts, svc.keys, clock.now, closed_parts)
    # A day later the periods' runs move on: the old ones go, the new ones give the same.
    clock.now += DAY
    from_days = await _reads(client, tenant.id, headers)
    await spans.build_all(pool, svc.scripts, svc.keys, clock.now, closed_parts)
    built = await _spans_of(pool, tenant.id)
    assert (dt.date(2026, 8, 14), dt.date(2026, 9, 11)) not in built
    assert (dt.date(2026, 8, 15), dt.date(2026, 9, 12)) in built
    assert await _reads(client, tenant.id, headers) == from_days


async def test_a_late_flush_and_drain_undo_the_spans_of_their_day(app, client, pool, clock):
    tenant, headers = await _month(app, client, pool, clock)
    svc = app.extensions["analytics"]
    await spans.build_all(pool, svc.scripts, svc.keys, clock.now, closed_parts)
    before = await _reads(client, tenant.id, headers)
    # Events of a day whose spans are built arrive late: a new visitor, who also converts.
    clock.now = at(2026, 8, 20, 23, 30)
    await _visit(client, tenant.id, 99, "pageview", "click_whatsapp", page="/late")
    clock.now = at(2026, 9, 12, 15)
    # The drain counts them into the breakdowns before the flush adds them to the totals.
    await drain(app)
    assert _page_events(await _reads(client, tenant.id, headers)) == _page_events(before) + 1
    # Spans built in between hold the new breakdown rows but not yet the flushed sketches.
    await spans.build_all(pool, svc.scripts, svc.keys, clock.now, closed_parts)
    await flush(app)
    assert not {s for s in await _spans_of(pool, tenant.id) if s[0] <= dt.date(2026, 8, 20)
                <= s[1]}
    after = await _reads(client, tenant.id, headers)
    assert after == await _days_only(client, pool, tenant.id, headers)
    assert after[0]["totals"]["visitors"] == before[0]["totals"]["visitors"] + 1
    assert after[0]["totals"]["leads"] == before[0]["totals"]["leads"] + 1
    assert _page_events(after) == _page_events(before) + 1
    # Built again, the spans give the same answers.
    await spans.build_all(pool, svc.scripts, svc.keys, clock.now, closed_parts)
    assert await _reads(client, tenant.id, headers) == after


async def test_rebuild_undoes_the_spans_of_the_days_it_rewrites(app, client, pool, clock, redis,
                                                                keys):
    from rollups.rebuild import rebuild

    tenant, headers = await _month(app, client, pool, clock)
    svc = app.extensions["analytics"]
    # A breakdown row no raw event backs (as after a bug), on a day without events: rebuild
    # from before it removes it.
    await pool.execute(
        "INSERT INTO breakdown_rollups (tenant_id, day, dimension, value, events, visitors, "
        "leads) VALUES ($1, '2026-07-28', 'source', 'Toaster', 50, 50, 50)", tenant.id)
    await spans.build_all(pool, svc.scripts, svc.keys, clock.now, closed_parts)
    assert "Toaster" in str(await _reads(client, tenant.id, headers))
    await rebuild(redis, pool, keys, svc.scripts, tenant.id, ZONE, dt.date(2026, 7, 27),
                  "tests")
    after = await _reads(client, tenant.id, headers)
    assert "Toaster" not in str(after)
    assert after == await _days_only(client, pool, tenant.id, headers)


async def test_the_schedulers_job_builds_the_days_that_are_over(settings, app, client, pool,
                                                                clock, caplog):
    import logging
    import re
    import time

    from app.clients import Clients
    from app.ops.scheduler import Worker
    from realtime.days import local_day

    tenant, _ = await _tenant(pool)
    today = local_day(time.time(), ZoneInfo(ZONE))
    for back in (40, 3):
        clock.now = at(today.year, today.month, today.day, 12) - back * DAY
        await _visit(client, tenant.id, back, "pageview")
    await flush(app)
    caplog.set_level(logging.INFO, logger="analytics.scheduler")
    clients = await Clients.open(settings)
    try:
        await Worker(clients).spans()
    finally:
        await clients.close()
    built = await _spans_of(pool, tenant.id)
    yesterday = today - dt.timedelta(days=1)
    assert (today - dt.timedelta(days=29), yesterday) in built  # 30d's days before today
    assert max(last for _, last in built) == yesterday
    assert any(re.fullmatch(r"built \d+ spans", r.getMessage()) for r in caplog.records)


async def test_a_span_is_never_built_from_a_piece_deleted_meanwhile(app, client, pool, clock):
    tenant, _ = await _tenant(pool)
    for day in range(8):
        clock.now = at(2026, 8, 12, 10) + day * DAY  # the 12th starts a block of 16
        await _visit(client, tenant.id, day, "pageview")
    await flush(app)
    svc = app.extensions["analytics"]
    await spans.build(pool, svc.scripts, svc.keys, tenant.id, dt.date(2026, 8, 19))
    have = await _spans_of(pool, tenant.id)
    four = (dt.date(2026, 8, 12), dt.date(2026, 8, 15))
    assert four in have
    # A write to the 12th deletes its spans after the build read which spans there were.
    async with pool.acquire() as conn, conn.transaction():
        await spans.invalidate(conn, [(tenant.id, dt.date(2026, 8, 12))])
    eight = (dt.date(2026, 8, 12), dt.date(2026, 8, 19))
    have.discard(eight)  # to be built again from its halves, one of them gone now
    async with pool.acquire() as conn:
        assert await spans._build(conn, svc.scripts, svc.keys, tenant.id, [eight], have) == 0
    assert four not in have
    assert not {s for s in await _spans_of(pool, tenant.id) if s[0] == dt.date(2026, 8, 12)}


async def test_a_breakdown_never_sums_a_span_deleted_after_it_was_listed(app, client, pool,
                                                                         clock, monkeypatch):
    from rollups import breakdowns

    tenant, _ = await _tenant(pool)
    for day in range(8):
        clock.now = at(2026, 8, 12, 10) + day * DAY
        await _visit(client, tenant.id, day, "pageview")
    await flush(app)
    svc = app.extensions["analytics"]
    await spans.build(pool, svc.scripts, svc.keys, tenant.id, dt.date(2026, 8, 19))
    week = (tenant.id, "device", dt.date(2026, 8, 12), dt.date(2026, 8, 19), 10)
    expected = await breakdowns.breakdown(pool, *week)
    assert expected[0][0]["visitors"] == 8
    listed = await _spans_of(pool, tenant.id)
    async with pool.acquire() as conn, conn.transaction():  # a write, after the listing
        await spans.invalidate(conn, [(tenant.id, dt.date(2026, 8, 12))])
    real, calls = spans.built, []

    async def listed_before_the_write(*args):
        calls.append(args)
        return listed if len(calls) == 1 else await real(*args)

    monkeypatch.setattr(spans, "built", listed_before_the_write)
    assert await breakdowns.breakdown(pool, *week) == expected
    assert len(calls) == 2  # read again once


async def test_a_pass_visits_only_the_tenants_with_days_or_spans(app, client, pool, clock):
    tenant, _ = await _month(app, client, pool, clock)
    idle = await create_tenant(pool, "Never sent an event", "UTC")
    drained = await create_tenant(pool, "Breakdowns only", "UTC")  # drained, not yet flushed
    spanned = await create_tenant(pool, "Spans only", "UTC")
    await pool.execute(
        "INSERT INTO breakdown_rollups (tenant_id, day, dimension, value, events, visitors, "
        "leads) VALUES ($1, '2026-08-03', 'page', '/', 1, 1, 0)", drained.id)
    await pool.execute("INSERT INTO rollup_spans (tenant_id, first_day, last_day) "
                       "VALUES ($1, '2026-08-02', '2026-08-03')", spanned.id)
    ours = {tenant.id, idle.id, drained.id, spanned.id}
    visited = [r["id"] for r in await spans.tenants_to_build(pool) if r["id"] in ours]
    assert visited == sorted({tenant.id, drained.id, spanned.id})
