"""Fixtures and hooks of the whole suite: a database and a Redis key prefix of this run's own,
on the real servers. The helpers tests import live in tests/support."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.accounts.tenants import Tenant, create_tenant
from app.accounts.tokens import create_token
from app.accounts.users import User, add_membership, create_user
from app.clients import make_redis
from app.factory import create_app
from app.ops.migrate import migrate
from app.settings import Settings
from realtime.keys import Keys
from tests.support.apps import pin_clock
from tests.support.http import PASSWORD, bearer
from tests.support.settings import (
    RUN,
    drop_database,
    make_settings,
    redis_url,
    remove_keys,
)

_names = itertools.count(1)


def pytest_configure(config):
    if os.environ.get("TEST_REDIS") == "cluster" and "TEST_REDIS_URL" not in os.environ:
        from tests.support.cluster import LocalCluster

        config._local_cluster = LocalCluster().start()
        os.environ["TEST_REDIS_URL"] = config._local_cluster.url


def pytest_unconfigure(config):
    cluster = getattr(config, "_local_cluster", None)
    if cluster is not None:
        cluster.stop()
        os.environ.pop("TEST_REDIS_URL", None)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[str]:
    await migrate(settings.database_url)
    yield settings.database_url
    await drop_database(settings.database_url)


@pytest.fixture(scope="session")
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database, min_size=1, max_size=5) as pool:
        yield pool


@pytest.fixture(scope="session")
def keys(settings: Settings) -> Keys:
    return Keys(settings.key_prefix)


# Every session, whatever its tests asked for: a test may write under the run's prefix
# through an app or a process of its own without ever asking for this client.
@pytest.fixture(scope="session", autouse=True)
async def redis(keys: Keys) -> AsyncIterator[Redis]:
    client = make_redis(redis_url(), timeout=10)
    yield client
    # Remove only what this run created. A run of tests that need no Redis may have none.
    with contextlib.suppress(RedisConnectionError):
        await remove_keys(client, keys.pattern())
    await client.aclose()


@pytest.fixture(scope="session")
async def app(settings: Settings, database: str, redis: Redis):
    app = create_app(settings)
    async with app.test_app():
        yield app


@pytest.fixture
async def client(app):
    return app.test_client()


@pytest.fixture
def clock(app):
    """Pins the app's time: set `clock.now`; restored after the test."""
    svc = app.extensions["analytics"]
    original = svc.clock
    yield pin_clock(app)
    svc.clock = original


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> Tenant:
    return await create_tenant(pool, f"Cafe {next(_names)}", "UTC")


@pytest.fixture
async def auth_headers(pool, tenant) -> dict[str, str]:
    """Authorization header with a fresh token of `tenant`."""
    _, plaintext = await create_token(pool, tenant.id, "tests")
    return bearer(plaintext)


@pytest.fixture
async def owner(pool: asyncpg.Pool, tenant: Tenant) -> User:
    """A user who owns `tenant` and logs in with PASSWORD."""
    user = await create_user(pool, f"owner{next(_names)}.{RUN}@example.com", PASSWORD)
    await add_membership(pool, user.id, tenant.id)
    return user
