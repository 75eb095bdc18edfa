"""Real scheduler processes: two at once, and one killed with SIGKILL at random moments."""

from __future__ import annotations

import asyncio
import random
import signal

from app.accounts.tenants import create_tenant
from rollups.locks import Locking
from tests.support.apps import flush
from tests.support.http import new_address, track, visitor
from tests.support.servers import start_process


async def _rollup_events(pool, tenant_id) -> int:
    return await pool.fetchval(
        "SELECT coalesce(sum(events), 0) FROM daily_rollups WHERE tenant_id = $1", tenant_id)


async def test_two_schedulers_and_kills_never_lose_or_double(settings, app, client, pool):
    tenant = await create_tenant(pool, "Two schedulers", "Asia/Kolkata")
    rng = random.Random(3)
    steady = start_process(settings, "scheduler", FLUSH_INTERVAL_SECONDS=1)
    victim = start_process(settings, "scheduler", FLUSH_INTERVAL_SECONDS=1)
    sent = 0
    try:
        for round_ in range(12):
            for _ in range(rng.randint(3, 8)):
                response = await track(client, tenant.id, rng.choice(["pageview", "qr_scan"]),
                                       headers=visitor(rng.randint(0, 30)),
                                       address=new_address())
                assert response.status_code == 200
                sent += 1
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            if round_ % 3 == 2:
                victim.send_signal(signal.SIGKILL)  # wherever it is: mid-drain, mid-flush
                victim.wait()
                victim = start_process(settings, "scheduler", FLUSH_INTERVAL_SECONDS=1)
    finally:
        for process in (steady, victim):
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
    await flush(app)
    assert await _rollup_events(pool, tenant.id) == sent
    assert await pool.fetchval(
        "SELECT count(*) FROM events WHERE tenant_id = $1", tenant.id) == sent


async def test_a_pass_longer_than_the_interval_is_followed_by_another_at_once(settings, app,
                                                                             client, pool):
    """With one instance at a time, an APScheduler job skips the ticks a running pass missed:
    under a backlog the scheduler would sit idle until the next one while the streams fill.
    Passes here take, by the worker's clock, 1.5, 1.5 and then 0.5 intervals; each stores
    what arrived while the one before ran; the worker stops during the fourth."""
    from app.clients import Clients
    from app.ops.scheduler import Worker

    tenant = await create_tenant(pool, "Overran", "UTC")
    interval = settings.flush_interval_seconds
    now = [0.0]
    stored, pauses = [], []

    class Slow(Worker):
        async def flush(self, locking=Locking.TRY, count_breakdowns=True):
            events, rollups = await super().flush(locking, count_breakdowns)
            stored.append(events)
            now[0] += interval * (1.5 if len(stored) < 3 else 0.5)
            if len(stored) < 4:
                assert (await track(client, tenant.id, "pageview")).status_code == 200
            else:
                self.stopped.set()
            return events, rollups

        async def pause(self, seconds):
            pauses.append(seconds / interval)
            await super().pause(seconds)

    await flush(app)
    clients = await Clients.open(settings)
    try:
        await Slow(clients, monotonic=lambda: now[0]).keep_flushing()
    finally:
        await clients.close()
    assert stored == [0, 1, 1, 1]
    assert pauses == [-0.5, -0.5, 0.5, 0.5]
