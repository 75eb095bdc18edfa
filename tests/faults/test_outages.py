"""Outages under steady load, on real processes (make test-faults).

Each test runs `web` and `scheduler` processes, sends a steady stream of events over several
tenants with httpx (every attempt recorded: its sequence number, which travels in the event's
metadata, when it started and ended, and what it got), and breaks something:

    Redis     a private redis-server is stopped for 30 s and comes back empty
    Postgres  a private PostgreSQL cluster is stopped for 60 s and comes back
    SIGTERM   the `web` process is told to stop while events and sockets are in flight

"Accepted" always means answered 200. Redis runs without persistence, so what it held and no
flush had stored yet is lost when it restarts empty (docs/reliability.md); the Redis test
accounts for that exactly instead of with a tolerance.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import re
import shutil
import signal
import time

import asyncpg
import httpx
import orjson
import pytest
import websockets

from app.ops.migrate import migrate
from realtime.keys import SHARDS, Keys
from tests.support.http import bearer, track
from tests.support.outages import (
    RATE,
    TRACK_DEADLINE,
    Dashboard,
    Load,
    Logged,
    Readings,
    added,
    assert_gets_match,
    at_least,
    counts,
    exactly,
    outage_settings,
    ready,
    reconnect,
    rollups,
    stored_seqs,
    tenants_with_tokens,
    trickle,
    utc_day,
    warmed_up,
)
from tests.support.polling import eventually
from tests.support.servers import (
    RedisServer,
    free_port,
    run_cli,
    start_process,
    wait_ready,
    web_server,
)

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


# -- Redis stopped for 30 s -------------------------------------------------------------


async def test_redis_stopped_for_30_s_under_load(settings, database, pool):
    """/track answers 503 quickly while Redis is away and 200 when it is back, no process
    restarted; sockets are closed with 1013 and reconnect; no GET number goes backwards;
    and what the rollups hold afterwards is exactly what was flushed before the stop plus
    everything accepted after it."""
    outage = 30
    own = RedisServer().start()
    cfg = outage_settings(settings, redis_url=own.url)
    dsn = cfg.database_url
    tokens = await tenants_with_tokens(pool, "Redis outage")
    tenants = list(tokens)
    day = utc_day()
    scheduler = Logged(start_process(cfg, "scheduler"))
    dashboards: list[Dashboard] = []
    try:
        async with web_server(cfg) as web, Readings(web.http, tokens) as readings:
            dashboards = [await Dashboard.open(web.ws, t, tokens[t]) for t in tenants]
            async with Load(web.http, tenants) as load:
                # Flushed right before the stop: everything accepted so far is stored.
                flushed = await warmed_up(dsn, tenants, load)
                stop_began = time.monotonic()
                own.stop()
                stopped = time.monotonic()

                codes = [await d.closed(15) for d in dashboards]
                assert codes == [1013] * len(dashboards)
                with pytest.raises(websockets.InvalidStatus) as refused:
                    await Dashboard.open(web.ws, tenants[0], tokens[tenants[0]])
                assert refused.value.response.status_code == 503
                async with httpx.AsyncClient(timeout=5) as http:
                    readyz = await http.get(f"{web.http}/readyz")
                assert readyz.status_code == 503 and "redis" in readyz.json()["error"]

                # Once the scheduler has failed, nothing more reaches Postgres until Redis is
                # back (every flush starts by reading Redis): this is what was flushed.
                await eventually(lambda: scheduler.matching("flush failed", stopped), 15,
                            what="the scheduler notices")
                at_stop = await rollups(dsn, tenants)
                stored_at_stop = await stored_seqs(dsn, tenants)

                await asyncio.sleep(stopped + outage - time.monotonic())
                restart_began = time.monotonic()
                own.start()  # same port, empty: a restart without persistence
                restarted = time.monotonic()

                dashboards = [await reconnect(web.ws, t, tokens[t], 30) for t in tenants]
                for d in dashboards:  # live again: the load moves the numbers
                    await d.frame(lambda f: f["type"] == "update", 15)
                await asyncio.sleep(max(0.0, restarted + 12 - time.monotonic()))
            # The load has stopped and every answer is in.

            before = [a for a in load.attempts if a.started < stopped]
            # An event sent in the outage's last moments may reach Redis once it is back.
            during = [a for a in load.attempts if stopped <= a.started < restart_began - 2]
            after = [a for a in load.attempts if a.started >= restarted]
            assert all(a.status is not None for a in load.attempts), \
                [a for a in load.attempts if a.status is None][:5]
            assert {a.status for a in load.attempts} <= {200, 503}
            assert len(during) >= outage * RATE * 0.5
            assert {a.status for a in during} == {503}, \
                [(round(a.started - restart_began, 3), a.status) for a in during if a.status != 503]
            slow = [round(a.ended - a.started, 3) for a in load.attempts
                    if a.status == 503 and a.ended - a.started >= TRACK_DEADLINE]
            assert not slow, f"503s slower than {TRACK_DEADLINE} s: {slow}"
            assert after and all(a.accepted for a in after), \
                collections.Counter(a.status for a in after)

            # Redis restarted empty: what it held unflushed at the stop is gone by design;
            # everything flushed before it stays, and everything accepted since is added.
            old = counts(load.accepted(lambda a: a.started < stopped), tenants)
            new = load.accepted(lambda a: a.started >= stopped)
            assert at_least(at_stop, counts(flushed, tenants))
            assert at_least(old, at_stop)
            want = added(at_stop, counts(new, tenants))
            final = await exactly(dsn, tenants, want, 90, "after Redis came back")
            stored = await stored_seqs(dsn, tenants)
            assert max(stored.values()) == 1, "a raw event stored twice"
            assert set(stored) == set(stored_at_stop) | {a.seq for a in new}
            assert set(stored_at_stop) <= {a.seq for a in before if a.accepted}

            assert scheduler.matching("flush failed: Redis does not answer", stopped)
            assert not scheduler.matching("Postgres does not answer"), scheduler.output
            assert scheduler.matching(r"flush recovered after \d+ failed attempts", restarted)
            assert scheduler.process.poll() is None and web.process.poll() is None

            await eventually(lambda: ready(web.http), 30, interval=0.5, what="/readyz 200 again")
            async with httpx.AsyncClient(timeout=10) as http:
                answers = {t: (await readings.read(http, t))[1] for t in tenants}
            assert_gets_match(answers, final, same_day=utc_day() == day)
            if utc_day() == day:  # one day of sketches: the week's union needs no Redis
                assert readings.statuses(stopped, restarted).keys() <= {200}  # from Postgres
            readings.assert_never_backwards()
            lost = sum(old[t]["events"] - at_stop[t]["events"] for t in tenants)
            print(f"\n{len(load.accepted())} of {len(load.attempts)} events accepted; {lost} "
                  "accepted before the stop and not yet flushed went with Redis (all of them "
                  f"from the last {stop_began - max(a.ended for a in flushed):.1f} s before it)")
    finally:
        for d in dashboards:
            await d.aclose()
        code = await scheduler.stop()
        own.close()
    assert code == 0, scheduler.output


# -- Postgres stopped for 60 s ----------------------------------------------------------


async def test_postgres_stopped_for_60_s_under_load(settings, redis, own_postgres):
    """Ingestion carries on (every /track answered 200), the scheduler logs each
    failure and retries with growing delays, and afterwards every accepted event is stored
    exactly once and counted exactly once."""
    outage = 60
    dsn = own_postgres.url("analytics_outage")
    await migrate(dsn)
    # Tenant ids of this cluster start at 1, like the shared test database's: keys of their own.
    cfg = outage_settings(settings, database_url=dsn, key_prefix=f"{settings.key_prefix}pg-outage:")
    conn = await asyncpg.connect(dsn)
    try:
        tokens = await tenants_with_tokens(conn, "Postgres outage")
    finally:
        await conn.close()
    tenants = list(tokens)
    day = utc_day()
    scheduler = Logged(start_process(cfg, "scheduler"))
    try:
        async with web_server(cfg) as web, Readings(web.http, tokens) as readings:
            async with Load(web.http, tenants) as load:
                await warmed_up(dsn, tenants, load)

                stop_began = time.monotonic()
                own_postgres.stop()  # a clean shutdown: the scheduler may fail before it ends
                stopped = time.monotonic()
                await eventually(lambda: scheduler.matching("flush failed", stop_began), 15,
                            what="the scheduler notices")
                async with httpx.AsyncClient(timeout=10) as http:
                    readyz = await http.get(f"{web.http}/readyz")
                assert readyz.status_code == 503 and "postgres" in readyz.json()["error"]

                await asyncio.sleep(stopped + outage - time.monotonic())
                # What was accepted meanwhile waits in the streams (and perhaps a little more).
                # One shard at a time: redis-py's cluster client, set up lazily, fails
                # concurrent first commands.
                keys = Keys(cfg.key_prefix)
                waiting = sum([await redis.xlen(keys.events(s)) for s in range(SHARDS)])
                assert waiting >= len(load.accepted(lambda a: a.started >= stopped)) > 0
                restart_began = time.monotonic()
                own_postgres.start()
                restarted = time.monotonic()
                await asyncio.sleep(10)

            assert all(a.status is not None for a in load.attempts), \
                [a for a in load.attempts if a.status is None][:5]
            statuses = collections.Counter(a.status for a in load.attempts)
            assert statuses.keys() == {200}, statuses
            during = [a for a in load.attempts if stopped <= a.started < restarted]
            assert len(during) >= outage * RATE * 0.5

            want = counts(load.accepted(), tenants)
            # The scheduler's backoff reaches 32 s and then 60 s: give it time to come round.
            final = await exactly(dsn, tenants, want, 150, "after Postgres came back")
            stored = await stored_seqs(dsn, tenants)
            assert max(stored.values()) == 1, "a raw event stored twice"
            assert set(stored) == {a.seq for a in load.accepted()}

            assert not scheduler.matching("flush failed", end=stop_began), scheduler.output
            failures = scheduler.matching("flush failed", stop_began)
            assert len(failures) >= 3, scheduler.output
            assert all("flush failed: Postgres does not answer" in line and
                       "nothing is lost, retrying in" in line for line in failures), failures
            delays = [int(re.search(r"retrying in (\d+) s", line)[1]) for line in failures]
            assert delays == sorted(delays) and delays[0] < delays[-1] <= 60, delays
            recovered = scheduler.matching(r"flush recovered after (\d+) failed attempts",
                                           restarted)
            assert recovered, scheduler.output
            assert re.search(r"after (\d+) failed", recovered[0])[1] == str(len(failures))
            assert scheduler.process.poll() is None and web.process.poll() is None

            await eventually(lambda: ready(web.http), 30, interval=0.5, what="/readyz 200 again")
            async with httpx.AsyncClient(timeout=10) as http:
                answers = {t: (await readings.read(http, t))[1] for t in tenants}
            assert_gets_match(answers, final, same_day=utc_day() == day)
            # While Postgres was away no flush could renew a tenant's rollups generation: a GET
            # said so, or answered from the process's cache what it had answered before.
            readings.assert_unavailable_or_unchanged(stopped + 1, restart_began)
            readings.assert_never_backwards()
    finally:
        code = await scheduler.stop()
    assert code == 0, scheduler.output


async def test_live_sockets_outlive_a_postgres_outage(settings, redis, own_postgres):
    """Live numbers come from Redis: a dashboard keeps its socket and its updates while
    Postgres is away, even when its credentials are rechecked meanwhile."""
    from quart.testing.connections import WebsocketDisconnectError

    from app.factory import create_app

    dsn = own_postgres.url("analytics_live")
    await migrate(dsn)
    cfg = dataclasses.replace(settings, database_url=dsn,
                              key_prefix=f"{settings.key_prefix}pg-live:",
                              live_reauth_interval=0.5)  # several rechecks within the outage
    conn = await asyncpg.connect(dsn)
    try:
        tenant, token = next(iter((await tenants_with_tokens(conn, "Live outage", 1)).items()))
    finally:
        await conn.close()
    app = create_app(cfg)
    async with app.test_app():
        client = app.test_client()
        async with client.websocket(f"/api/analytics/{tenant}/live",
                                    headers=bearer(token)) as ws:
            assert orjson.loads(await ws.receive())["type"] == "snapshot"
            own_postgres.stop()
            await asyncio.sleep(3)
            assert (await track(client, tenant, "click_call")).status_code == 200
            try:
                async with asyncio.timeout(5):
                    while (frame := orjson.loads(await ws.receive()))["type"] != "update":
                        pass
            except WebsocketDisconnectError as closed:
                raise AssertionError(
                    f"socket closed with {closed.args[0]} while Postgres was away") from closed
            assert frame["data"]["call_clicks"] == 1
            own_postgres.start()


# -- SIGTERM to web ---------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_to_web_under_load(settings, database, pool, workers):
    """`analytics serve` told to stop mid-load: requests in flight are answered, sockets get
    1001, the process exits in time, and every accepted event, and only those, is counted."""
    cfg = outage_settings(settings)
    tokens = await tenants_with_tokens(pool, "Terminated")
    tenants = list(tokens)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = Logged(start_process(cfg, "serve", PORT=port, WEB_CONCURRENCY=workers))
    dashboards: list[Dashboard] = []
    try:
        await wait_ready(base, web.process, timeout=30)
        dashboards = [await Dashboard.open(f"ws://127.0.0.1:{port}", t, tokens[t])
                      for t in tenants for _ in range(2)]
        async with Load(base, tenants) as load:
            await asyncio.sleep(3)
            # Requests the server is in the middle of when the signal comes.
            go_on = asyncio.Event()
            trickles, sent = [], []
            for n in range(3):
                sent.append(asyncio.Event())
                trickles.append(asyncio.create_task(
                    trickle(port, tenants[n], 10_000_000 + n, sent[-1], go_on)))
            await asyncio.wait_for(asyncio.gather(*(s.wait() for s in sent)), 10)
            await asyncio.sleep(0.5)  # the server has read their headers

            signalled = time.monotonic()
            web.process.send_signal(signal.SIGTERM)
            codes = [await d.closed(10) for d in dashboards]
            await asyncio.sleep(0.5)
            go_on.set()
            trickled = await asyncio.gather(*trickles)
            code = await asyncio.to_thread(web.process.wait, 20)
            exited = time.monotonic()
            await asyncio.sleep(1)  # a little load against the closed port too

        assert codes == [1001] * len(dashboards)
        assert trickled == [200] * len(trickles)
        # uvicorn re-raises the signal it handled once its graceful shutdown is done.
        assert code in (0, -signal.SIGTERM), web.output
        assert exited - signalled < 15
        assert not web.matching("graceful shutdown exceeded|Traceback|ERROR"), web.output

        before = [a for a in load.attempts if a.started < signalled]
        assert len(before) >= 3 * RATE * 0.5
        # Nothing hangs: each request got a status or a transport error (when it reached the
        # server too late, or the closed port); below, no failed one turns out stored.
        assert all(a.status is not None or a.error is not None for a in load.attempts)
        assert {a.status for a in load.attempts} <= {200, None}
        failed_before = [a for a in before if not a.accepted]
        print(f"{len(load.accepted())} accepted, {len(before)} sent before the signal, "
              f"{len(failed_before)} of those failed: "
              f"{collections.Counter(a.error for a in failed_before)}")

        assert await asyncio.to_thread(lambda: run_cli(cfg, "flush", "--json").returncode) == 0
        accepted = load.accepted()
        want = counts(accepted, tenants)
        for n in range(len(trickles)):
            want[tenants[n]]["events"] += 1
            want[tenants[n]]["qr_scans"] += 1
        assert await rollups(cfg.database_url, tenants) == want
        stored = await stored_seqs(cfg.database_url, tenants)
        assert max(stored.values()) == 1
        # Exactly the events answered 200: none lost, and none a client saw fail.
        assert set(stored) == {a.seq for a in accepted} | {10_000_000 + n for n in range(3)}
    finally:
        for d in dashboards:
            await d.aclose()
        await web.stop()
