"""A test run removes what it created on the shared servers, whatever its tests asked for:
the database of its own and every key under its prefix (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.support.settings import (
    ADMIN_DSN,
    database_name,
    database_url,
    drop_database,
    key_prefix,
    remove_keys,
)

ROOT = Path(__file__).resolve().parents[1]
# Writes under the run's prefix through an app of its own (events, counters, the day's
# salt) and asks for neither the `redis` nor the `keys` fixture.
QUIET_TEST = ("tests/ingest/test_micro_batches.py::"
              "test_events_of_one_loop_turn_leave_together_when_nothing_is_on_its_way")


async def test_a_run_whose_tests_never_asked_for_redis_leaves_no_key_behind(redis):
    run = f"hygiene{secrets.token_hex(3)}"
    try:
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             QUIET_TEST],
            cwd=ROOT, env={**os.environ, "TEST_RUN": run}, capture_output=True, text=True,
            timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 passed" in done.stdout, done.stdout
        left = [key async for key in redis.scan_iter(match=f"{key_prefix(run)}*", count=1000)]
        assert left == []
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            assert not await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1",
                                           database_name(run))
        finally:
            await conn.close()
    finally:  # what a failing run left goes all the same
        await remove_keys(redis, f"{key_prefix(run)}*")
        await drop_database(database_url(run))
