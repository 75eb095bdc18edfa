"""/track's script calls are coalesced per process (realtime/batching.py): events that arrive
together share one Redis call, each still gets its own answer, and a caller that gave up
before its batch left is not recorded."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import signal

import pytest

from realtime.event_types import COUNTER_OF
from realtime.ingest import Sender
from realtime.validation import TrackRequest
from tests.support.apps import pin_clock, serving_app
from tests.support.http import new_address, track
from tests.support.servers import RedisServer


async def test_events_sent_together_share_calls_and_each_gets_its_own_answer(
        settings, tenant, redis, keys):
    async with serving_app(settings, rate_limit_per_address_per_minute=3) as app:
        svc = app.extensions["analytics"]
        clock = pin_clock(app)
        # A minute of the test's own (one ingest health hash, one day of counts).
        clock.now = 2_000_000_000 + secrets.randbelow(10**6) * 60 + 30
        day = dt.datetime.fromtimestamp(clock.now, dt.UTC).date()
        stream = keys.events(keys.shard_of(tenant.id))
        buffered = await redis.xlen(stream)
        client = app.test_client()
        crowded = new_address()
        sends = ([track(client, tenant.id, "pageview", address=crowded) for _ in range(8)]
                 + [track(client, tenant.id, "click_whatsapp", address=new_address())
                    for _ in range(5)]
                 + [track(client, tenant.id, "click_call", address=new_address())
                    for _ in range(3)])
        responses = await asyncio.gather(*sends)
        statuses = [r.status_code for r in responses]

        # The crowded address: 3 accepted, the rest refused with its own 429 and message.
        assert sorted(statuses[:8]) == [200] * 3 + [429] * 5
        for response in responses[:8]:
            if response.status_code == 429:
                assert "per address" in (await response.get_json())["error"]
        assert statuses[8:] == [200] * 8
        # 16 events went out in fewer calls than events.
        sizes = svc.ingestor.calls.sizes
        assert sum(size * n for size, n in sizes.items()) == 16
        assert sum(sizes.values()) < 16
        assert max(sizes) > 1

        # Each accepted event was counted as itself, not as another of its batch.
        totals = await redis.hgetall(keys.totals(tenant.id, day))
        assert int(totals[b"events"]) == 11
        assert int(totals[COUNTER_OF["pageview"].encode()]) == 3
        assert int(totals[COUNTER_OF["click_whatsapp"].encode()]) == 5
        assert int(totals[COUNTER_OF["click_call"].encode()]) == 3
        assert await redis.xlen(stream) == buffered + 11
        health = await redis.hgetall(keys.ingest_health(tenant.id, int(clock.now // 60)))
        assert health == {b"accepted": b"11", b"rate_limited": b"5"}


async def test_events_of_one_loop_turn_leave_together_when_nothing_is_on_its_way(
        settings, tenant):
    """Requests that came in one poll are handled in one turn of the loop: the first finds
    the connection idle and starts a batch, and the others join it instead of waiting a round
    trip behind it."""
    async with serving_app(settings) as app:
        svc = app.extensions["analytics"]
        await svc.salts.for_time(svc.clock())  # the day's salt: no Redis call in what follows
        event = TrackRequest(tenant_id=tenant.id, event_type="pageview")

        async def ingest():
            sender = Sender(new_address(), "Mozilla/5.0", "")
            return await svc.ingestor.ingest(event, b"{}", sender, dt.UTC, svc.clock())

        for _ in range(3):
            results = await asyncio.gather(*(ingest() for _ in range(10)))
            assert [r.outcome.value for r in results] == ["accepted"] * 10
        assert svc.ingestor.calls.sizes == {10: 3}


@pytest.fixture
def own_redis():
    server = RedisServer().start()
    yield server
    server.close()


async def test_callers_get_their_answer_at_the_deadline_and_those_never_sent_stay_unrecorded(
        settings, database, pool, own_redis):
    """A frozen Redis (SIGSTOP): the call on its way and the one waiting behind it (one batch
    in flight at a time) both end at their deadline, long before Redis's own reply timeout.
    Once Redis resumes, the one on its way is recorded (as its 503 said it might be); the
    one that never left is not."""
    from app.accounts.tenants import create_tenant

    tenant = await create_tenant(pool, "Patient", "UTC")
    async with serving_app(settings, redis_url=own_redis.url, track_batches_in_flight=1,
                           track_deadline=0.3, redis_reply_timeout=10) as app:
        svc = app.extensions["analytics"]
        event = TrackRequest(tenant_id=tenant.id, event_type="pageview")

        async def ingest():
            sender = Sender(new_address(), "Mozilla/5.0", "")
            return await svc.ingestor.ingest(event, b"{}", sender, dt.UTC, svc.clock())

        await svc.salts.for_time(svc.clock())  # the day's salt: no Redis call in what follows
        os.kill(own_redis.process.pid, signal.SIGSTOP)  # replies wait until SIGCONT
        try:
            on_its_way = asyncio.create_task(ingest())
            await asyncio.sleep(0.05)
            waiting = asyncio.create_task(ingest())
            done, _ = await asyncio.wait([on_its_way, waiting], timeout=5)
            assert done == {on_its_way, waiting}, "a caller outlived its deadline"
            for task in done:
                assert isinstance(task.exception(), TimeoutError)
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        later = await ingest()
        assert later.outcome.value == "accepted"
        await svc.ingestor.calls.close()  # every batch on its way has landed

        day = dt.datetime.fromtimestamp(svc.clock(), dt.UTC).date()
        totals = await svc.redis.hgetall(svc.keys.totals(tenant.id, day))
        assert int(totals[b"events"]) == 2  # the one on its way and the later one
        assert svc.ingestor.calls.sizes == {1: 2}


async def test_a_fresh_process_takes_a_burst_of_first_events(settings, tenant):
    """A process's very first events arrive at once (on a Redis Cluster its client has just
    been made: see app.clients.warmed)."""
    for _ in range(5):
        async with serving_app(settings) as app:
            client = app.test_client()
            responses = await asyncio.gather(*[track(client, tenant.id, address=new_address())
                                               for _ in range(20)])
            assert [r.status_code for r in responses] == [200] * 20


async def test_a_fresh_clients_first_commands_may_all_run_at_once(settings, keys):
    """What the process's first burst meets, without the app's own timing around it: a
    client just opened runs 30 commands at once, ten times over, without one failing (on a
    Redis Cluster, redis-py 8.1 fails many of them unless app.clients.warmed ran)."""
    from app.clients import Clients

    for attempt in range(10):
        clients = await Clients.open(settings, web=True)
        try:
            key = keys.salt(dt.date(2000, 1, 1 + attempt))  # a key of the run's own prefix
            replies = await asyncio.gather(
                *[clients.redis.set(key, "x", nx=True, ex=60, get=True) for _ in range(30)],
                return_exceptions=True)
            assert [r for r in replies if isinstance(r, BaseException)] == []
            await clients.redis.delete(key)
        finally:
            await clients.close()
