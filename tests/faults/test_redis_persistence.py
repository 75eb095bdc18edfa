"""Redis killed under load, with production's persistence (deploy/redis.conf: an append-only
file fsynced every second) and without it (make test-faults).

Each test runs a `web` and a `scheduler` process against a redis-server of its own started
from deploy/redis.conf, sends a steady stream of numbered events (the harness of
tests/test_outages.py: every attempt recorded with its sequence number, which travels in
the event's metadata), SIGKILLs the redis-server and starts it again on the same port and
directory, as a service manager would:

    under load   with Postgres up: what the last moments before the kill become
    backlog      with Postgres stopped first, so the accepted events wait in the streams;
                 Redis is killed and restarted, then Postgres comes back

After the load, a flush, and the scheduler's catching up, every accepted event (answered 200)
is looked for in Postgres: its raw row (by sequence number) and the rollups' counts.
"Lost" is an accepted event missing from either; "counted twice" a raw row stored twice or
a rollup count above what was accepted. Each test prints its figures and appends them to
test-artifacts/redis-persistence.jsonl; docs/reliability.md has the table.

With the append-only file, killing the process loses nothing that Redis had answered: its
writes are in the kernel before the reply goes out, and only a machine crash can lose the
last second or two that were not yet fsynced (Redis's documented bound for everysec: the
fsync runs every second, and a write waits at most 2 s for a slow one). The tests allow
exactly that: a lost event must have been answered within LOSS_WINDOW before the kill.
Without it, the restart comes back empty and what the design says is lost is lost.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import shutil
import time

import asyncpg
import pytest

from app.clients import make_redis
from app.ops.migrate import migrate
from realtime.keys import SHARDS, Keys
from tests.support.outages import (
    COLUMNS,
    RATE,
    Attempt,
    Load,
    Logged,
    Readings,
    caught_up,
    counts,
    outage_settings,
    rollups,
    stored_seqs,
    tenants_with_tokens,
    warmed_up,
)
from tests.support.polling import eventually as until
from tests.support.servers import REDIS_CONF, ROOT, RedisServer, run_cli, start_process, web_server

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

# appendfsync everysec: a write reaches the disk within a second, or 2 s when a slow fsync
# makes Redis postpone it. Only what was answered this close to the kill may be lost.
LOSS_WINDOW = 2.0
# With a drain every 5 s, the kill comes when the oldest event Redis holds is this old: past
# the loss window, and well before the next drain would store it.
KILL_AT_AGE = (LOSS_WINDOW + 1.0, LOSS_WINDOW + 2.0)
FIGURES = ROOT / "test-artifacts" / "redis-persistence.jsonl"


@pytest.fixture(params=["on", "off"])
def persistence(request) -> str:
    return request.param


@pytest.fixture
def own(persistence):
    """A redis-server from deploy/redis.conf as it is ("on"), or with its append-only file
    turned off."""
    off = {"appendonly": "no"} if persistence == "off" else {}
    server = RedisServer(config=(REDIS_CONF,), **off).start()
    yield server
    server.close()


async def oldest_buffered_age(redis, keys: Keys) -> float:
    """Seconds since the oldest event still in a stream was added (stream ids are the
    server's milliseconds): how far back a Redis that restarts empty would lose events."""
    firsts = [await redis.xrange(keys.events(s), count=1) for s in range(SHARDS)]
    oldest = min((int(entries[0][0].split(b"-")[0]) for entries in firsts if entries),
                 default=None)
    return 0.0 if oldest is None else time.time() - oldest / 1000


def in_loss_window(attempt: Attempt, killed: float) -> bool:
    """Sent before the kill and answered at most LOSS_WINDOW before it (or after it: the
    reply the test reads lags the one Redis gave): an event Redis may have lost."""
    return attempt.started <= killed and killed - attempt.ended <= LOSS_WINDOW


def sigkill_and_restart(server: RedisServer) -> tuple[float, float]:
    """A crash of redis-server and its restart on the same port and directory: (killed,
    answering again), monotonic."""
    server.stop()  # SIGKILL
    killed = time.monotonic()
    server.start()
    return killed, time.monotonic()


@dataclasses.dataclass
class Outcome:
    """What Postgres holds of the accepted events once everything is stored."""

    accepted: list[Attempt]
    raw_lost: list[Attempt]  # accepted, no raw row
    raw_twice: int  # raw rows beyond one per accepted event
    counted_lost: int  # accepted events the rollups' `events` column lacks
    counted_twice: int  # counts beyond what was accepted, over every column

    @property
    def lost(self) -> int:
        return max(len(self.raw_lost), self.counted_lost)

    @property
    def twice(self) -> int:
        return max(self.raw_twice, self.counted_twice)


async def flushed(cfg) -> None:
    """`analytics flush`, again until it works (Postgres may still be starting)."""
    async def once() -> bool:
        return (await asyncio.to_thread(run_cli, cfg, "flush", "--json")).returncode == 0

    await until(once, 60, interval=1, what="analytics flush succeeds")


async def settled(cfg, dsn: str, tenants: list[int], load: Load, since: float) -> Outcome:
    """Once every event accepted after `since` (which nothing may lose) is stored and one
    more flush ran: what Postgres holds against what was accepted."""
    await flushed(cfg)
    await caught_up(dsn, tenants, load.accepted(lambda a: a.started >= since), 60,
                    "events accepted after the restart stored")
    await flushed(cfg)
    accepted = load.accepted()
    stored = await stored_seqs(dsn, tenants)
    never = set(stored) - {a.seq for a in accepted}
    assert not never, f"raw rows of events never accepted: {sorted(never)[:10]}"
    have, want = await rollups(dsn, tenants), counts(accepted, tenants)
    return Outcome(
        accepted=accepted,
        raw_lost=[a for a in accepted if a.seq not in stored],
        raw_twice=sum(n - 1 for n in stored.values() if n > 1),
        counted_lost=sum(max(0, want[t]["events"] - have[t]["events"]) for t in tenants),
        counted_twice=sum(max(0, have[t][c] - want[t][c]) for t in tenants for c in COLUMNS),
    )


def record(scenario: str, persistence: str, outcome: Outcome, load: Load, **extra) -> None:
    figures = {"scenario": scenario, "persistence": persistence,
               "sent": len(load.attempts), "accepted": len(outcome.accepted),
               "lost": outcome.lost, "raw_lost": len(outcome.raw_lost),
               "counted_lost": outcome.counted_lost, "counted_twice": outcome.twice,
               "rate_per_s": load.rate, **extra}
    print("\n" + json.dumps(figures))
    FIGURES.parent.mkdir(exist_ok=True)
    with FIGURES.open("a") as out:
        out.write(json.dumps({"at": time.strftime("%Y-%m-%d %H:%M:%S"), **figures}) + "\n")


# -- SIGKILL under steady load ----------------------------------------------------------


async def test_redis_sigkilled_under_load(settings, database, pool, persistence, own):
    """With the append-only file, nothing answered 200 more than LOSS_WINDOW before the kill
    is lost (in practice nothing at all); without it, what Redis held unflushed goes. Either
    way nothing is counted twice and no GET number goes backwards."""
    # The production flush interval: events wait in Redis up to 5 s before they are stored.
    cfg = dataclasses.replace(outage_settings(settings, redis_url=own.url),
                              flush_interval_seconds=5)
    dsn = cfg.database_url
    tokens = await tenants_with_tokens(pool, f"Redis killed ({persistence})")
    tenants = list(tokens)
    keys = Keys(cfg.key_prefix)
    redis = make_redis(own.url, timeout=5)
    scheduler = Logged(start_process(cfg, "scheduler"))
    try:
        async with web_server(cfg) as web, Readings(web.http, tokens) as readings:
            async with Load(web.http, tenants) as load:
                await warmed_up(dsn, tenants, load)
                # The kill comes when Redis holds events accepted well before the loss
                # window that no drain has stored yet, and well before the next drain: a
                # Redis that restarts empty must lose them, one that persists must not.
                async def old_enough() -> bool:
                    low, high = KILL_AT_AGE
                    return low <= await oldest_buffered_age(redis, keys) < high

                await until(old_enough, 60, interval=0.05,
                            what="Redis holds events older than the loss window")
                killed, restarted = sigkill_and_restart(own)
                await until(lambda: any(a.accepted for a in load.attempts if a.started > restarted),
                            30, what="/track accepts events again")
                await asyncio.sleep(8)
            outcome = await settled(cfg, dsn, tenants, load, restarted)
            readings.assert_never_backwards()
            assert readings.statuses(restarted + 5).keys() == {200}
    finally:
        await redis.aclose()
        code = await scheduler.stop()
    assert code == 0, scheduler.output

    statuses = collections.Counter(a.status for a in load.attempts)
    assert statuses.keys() <= {200, 503}, statuses
    assert outcome.twice == 0, outcome
    lost_age = sorted(round(killed - a.ended, 3) for a in outcome.raw_lost)
    in_window = sum(1 for a in outcome.accepted if in_loss_window(a, killed))
    record("Redis SIGKILLed under steady load, restarted at once", persistence, outcome, load,
           accepted_in_loss_window=in_window, lost_answered_seconds_before_kill=lost_age[-3:],
           restart_seconds=round(restarted - killed, 2))
    # Only events sent before the kill can be lost: every later one reached the new Redis.
    assert all(a.started <= killed for a in outcome.raw_lost), \
        [(a.seq, round(a.started - killed, 3)) for a in outcome.raw_lost if a.started > killed][:5]
    if persistence == "on":
        assert all(in_loss_window(a, killed) for a in outcome.raw_lost), lost_age
        assert outcome.counted_lost <= in_window, (outcome, in_window)
    else:
        # Redis came back empty: every event accepted since the last drain went with it,
        # older ones than the loss window included (the kill waited for such a moment).
        # (The counts lose what came since the last flush, which may be more or fewer.)
        assert any(not in_loss_window(a, killed) for a in outcome.raw_lost), (lost_age, outcome)
        assert outcome.counted_lost > 0, outcome


# -- a backlog in the streams while Postgres is down ------------------------------------


async def test_redis_sigkilled_holding_a_backlog_while_postgres_is_down(
        settings, own_postgres, persistence, own):
    """Postgres stopped, events pile up in the Redis streams, Redis is SIGKILLed and
    restarted, then Postgres comes back. With the append-only file the backlog is stored,
    every event exactly once; without it the backlog is gone, and only the backlog."""
    backlog_seconds = 15
    dsn = own_postgres.url("analytics_backlog")
    await migrate(dsn)
    cfg = outage_settings(settings, database_url=dsn, redis_url=own.url)
    conn = await asyncpg.connect(dsn)
    try:
        tokens = await tenants_with_tokens(conn, f"Backlog ({persistence})")
    finally:
        await conn.close()
    tenants = list(tokens)
    keys = Keys(cfg.key_prefix)
    redis = None
    scheduler = Logged(start_process(cfg, "scheduler"))
    try:
        async with web_server(cfg) as web, Readings(web.http, tokens) as readings:
            async with Load(web.http, tenants) as load:
                await warmed_up(dsn, tenants, load)
                own_postgres.stop()
                stopped = time.monotonic()
                await asyncio.sleep(backlog_seconds)

                redis = make_redis(own.url, timeout=5)
                # Accepted first, counted after: each of these is in a stream by now.
                backlog = load.accepted(lambda a: a.started >= stopped)
                waiting = sum([await redis.xlen(keys.events(s)) for s in range(SHARDS)])
                assert waiting >= len(backlog) > backlog_seconds * RATE * 0.3, \
                    (waiting, len(backlog))
                killed, restarted = sigkill_and_restart(own)
                await until(lambda: any(a.accepted for a in load.attempts if a.started > restarted),
                            30, what="/track accepts events again")
                waiting_after = sum([await redis.xlen(keys.events(s)) for s in range(SHARDS)])
                await asyncio.sleep(5)
                own_postgres.start()
                await asyncio.sleep(3)
            outcome = await settled(cfg, dsn, tenants, load, restarted)
            readings.assert_never_backwards()
    finally:
        if redis is not None:
            await redis.aclose()
        code = await scheduler.stop()
    assert code == 0, scheduler.output

    statuses = collections.Counter(a.status for a in load.attempts)
    assert statuses.keys() <= {200, 503}, statuses
    assert outcome.twice == 0, outcome
    # The backlog proper: accepted after Postgres stopped (the drain then in flight may
    # have stored a few), answered well before the kill.
    backlog = load.accepted(lambda a: stopped + 1 <= a.started <= killed
                            and not in_loss_window(a, killed))
    lost = {a.seq for a in outcome.raw_lost}
    record("Postgres down, backlog in the streams, Redis SIGKILLed, then Postgres back",
           persistence, outcome, load, backlog=len(backlog),
           backlog_lost=len(lost & {a.seq for a in backlog}),
           in_streams_before_kill=waiting, in_streams_after_restart=waiting_after)
    assert all(a.started <= killed for a in outcome.raw_lost)
    if persistence == "on":
        assert waiting_after >= len(backlog)
        assert all(in_loss_window(a, killed) for a in outcome.raw_lost), outcome.raw_lost[:5]
        in_window = sum(1 for a in outcome.accepted if in_loss_window(a, killed))
        assert outcome.counted_lost <= in_window
    else:
        # Every event of the backlog is gone, raw rows and counts alike.
        assert {a.seq for a in backlog} <= lost
        assert outcome.counted_lost >= len(backlog)
