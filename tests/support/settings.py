"""The run's own settings: a database and Redis key prefix named after RUN, on the real servers
(or the Redis Cluster `TEST_REDIS=cluster` starts)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets

import asyncpg

from app.settings import Settings

# TEST_RUN names a run from outside (tests/test_run_hygiene.py runs one and looks after it).
RUN = os.environ.get("TEST_RUN") or secrets.token_hex(4)
ADMIN_DSN = os.environ.get("TEST_ADMIN_DATABASE_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")


def redis_url() -> str:
    """The Redis the run uses: the local one, or the cluster `TEST_REDIS=cluster` starts."""
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def database_name(run: str = RUN) -> str:
    return f"analytics_test_{run}"


def database_url(run: str = RUN) -> str:
    return ADMIN_DSN.rsplit("/", 1)[0] + f"/{database_name(run)}"


def key_prefix(run: str = RUN) -> str:
    return f"test:{run}:"


async def remove_keys(redis, pattern: str) -> None:
    """Removes the keys matching `pattern` (one a call: keys of a cluster span slots)."""
    found = [key async for key in redis.scan_iter(match=pattern, count=1000)]
    for i in range(0, len(found), 50):
        await asyncio.gather(*(redis.unlink(key) for key in found[i:i + 50]))


async def drop_database(url: str) -> None:
    """Drops the database of `url`, if there is one, whoever is still connected (through the
    admin database, ADMIN_DSN's, on the server of `url`)."""
    server, database = url.rsplit("/", 1)
    conn = await asyncpg.connect(f"{server}/{ADMIN_DSN.rsplit('/', 1)[1]}")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


def make_settings(**overrides) -> Settings:
    base = Settings.from_env({
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url(),
        # Fixed: visitor hashes (HMACs under this key) then fill the same HyperLogLog
        # registers on every run, so tests asserting small exact visitor counts cannot be
        # undone by a chance register collision in one run out of hundreds.
        "SECRET_KEY": "test-secret",
        "ANALYTICS_KEY_PREFIX": key_prefix(),
    })
    return dataclasses.replace(base, **overrides)
