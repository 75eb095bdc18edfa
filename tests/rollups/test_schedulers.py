"""Real scheduler processes: two at once, and one killed with SIGKILL at random moments."""

from __future__ import annotations

import asyncio
import random
import signal

from app.accounts.tenants import create_tenant
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
