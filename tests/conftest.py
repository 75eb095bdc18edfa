"""Test wiring: a database and a Redis key prefix of this run's own, on the real servers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from app.accounts.users import User, add_membership, create_user
from app.settings import Settings
from app.factory import create_app
from app.ops.migrate import migrate
from app.accounts.tenants import Tenant, create_tenant
from realtime.keys import Keys

RUN = secrets.token_hex(4)
ADMIN_DSN = os.environ.get("TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def redis_url() -> str:
    """The Redis the run uses: the local one, or the cluster `TEST_REDIS=cluster` starts."""
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_configure(config):
    if os.environ.get("TEST_REDIS") == "cluster" and "TEST_REDIS_URL" not in os.environ:
        from tests.cluster import LocalCluster

        config._local_cluster = LocalCluster().start()
        os.environ["TEST_REDIS_URL"] = config._local_cluster.url


def pytest_unconfigure(config):
    cluster = getattr(config, "_local_cluster", None)
    if cluster is not None:
        cluster.stop()
        os.environ.pop("TEST_REDIS_URL", None)
_names = itertools.count(1)
_addresses = itertools.count(1)
PASSWORD = "correct horse battery staple"
AUTH_COOKIE = "QUART_AUTH"


def make_settings(**overrides) -> Settings:
    base = Settings.from_env({
        "DATABASE_URL": ADMIN_DSN.rsplit("/", 1)[0] + f"/analytics_test_{RUN}",
        "REDIS_URL": redis_url(),
        # Fixed: visitor hashes (HMACs under this key) then fill the same HyperLogLog
        # registers on every run, so tests asserting small exact visitor counts cannot be
        # undone by a chance register collision in one run out of hundreds.
        "SECRET_KEY": "test-secret",
        "ANALYTICS_KEY_PREFIX": f"test:{RUN}:",
    })
    return dataclasses.replace(base, **overrides)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[str]:
    await migrate(settings.database_url)
    yield settings.database_url
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        name = settings.database_url.rsplit("/", 1)[1]
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database, min_size=1, max_size=5) as pool:
        yield pool


@pytest.fixture(scope="session")
def keys(settings: Settings) -> Keys:
    return Keys(settings.key_prefix)


@pytest.fixture(scope="session")
async def redis(keys: Keys) -> AsyncIterator[Redis]:
    from app.clients import make_redis

    client = make_redis(redis_url(), timeout=10)
    yield client
    # Remove only what this run created (one key a call: keys of a cluster span slots).
    found = [key async for key in client.scan_iter(match=keys.pattern(), count=1000)]
    for i in range(0, len(found), 50):
        await asyncio.gather(*(client.unlink(key) for key in found[i:i + 50]))
    await client.aclose()


@pytest.fixture(scope="session")
async def app(settings: Settings, database: str, redis: Redis):
    app = create_app(settings)
    async with app.test_app():
        yield app


@pytest.fixture
async def client(app):
    return app.test_client()


class Clock:
    """A pinned time for an app: set `now`."""

    now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


def pin_clock(app) -> Clock:
    pinned = Clock()
    app.extensions["analytics"].clock = pinned
    return pinned


@pytest.fixture
def clock(app):
    """Pins the app's time: set `clock.now`; restored after the test."""
    svc = app.extensions["analytics"]
    original = svc.clock
    yield pin_clock(app)
    svc.clock = original


@contextlib.asynccontextmanager
async def serving_app(settings: Settings, **overrides):
    """An app of its own, serving, with some settings changed (timeouts, intervals)."""
    app = create_app(dataclasses.replace(settings, **overrides))
    async with app.test_app():
        yield app


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> Tenant:
    return await create_tenant(pool, f"Cafe {next(_names)}", "UTC")


async def track(client, tenant_id, event_type="pageview", metadata=None, *, headers=None,
                body=None, content_type="application/json", address=None):
    """POST an event the way a landing page does, from `address` if given (the test client's
    own otherwise); returns the response."""
    import orjson

    if body is None:
        document = {"tenant_id": tenant_id, "event_type": event_type}
        if metadata is not None:
            document["metadata"] = metadata
        body = orjson.dumps(document)
    sent = {"Content-Type": content_type, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}
    sent.update(headers or {})
    return await client.post("/api/analytics/track", data=body, headers=sent,
                             scope_base=from_address(address) if address else None)


async def flush(app, locking=None, **kwargs) -> tuple[int, int]:
    """Drain and flush everything now, as `analytics flush` does; (events, tenant-days)."""
    from rollups.drain import consumer_name, drain_all
    from rollups.flush import flush_all
    from rollups.locks import Locking

    svc = app.extensions["analytics"]
    locking = locking or Locking.WAIT
    # Not rollups.cycle: a fault meant for the flush must not fire in the drain.
    events = await drain_all(svc.redis, svc.pool, svc.keys, consumer=consumer_name(), locking=locking)
    rollups = await flush_all(svc.redis, svc.pool, svc.keys, svc.scripts, locking=locking, **kwargs)
    return events, rollups


@pytest.fixture
async def bearer(pool, tenant) -> dict[str, str]:
    """Authorization header with a fresh token of `tenant`."""
    from app.accounts.tokens import create_token

    _, plaintext = await create_token(pool, tenant.id, "tests")
    return {"Authorization": f"Bearer {plaintext}"}


def visitor(n: int) -> dict[str, str]:
    """Headers that make the n-th distinct visitor (same address, own browser)."""
    return {"User-Agent": f"Mozilla/5.0 (X11; Linux x86_64) Firefox/140.{n}"}


@pytest.fixture
async def owner(pool: asyncpg.Pool, tenant: Tenant) -> User:
    """A user who owns `tenant` and logs in with PASSWORD."""
    user = await create_user(pool, f"owner{next(_names)}.{RUN}@example.com", PASSWORD)
    await add_membership(pool, user.id, tenant.id)
    return user


def new_address() -> str:
    """A client address of the test's own, so per-client limits of one test leave the others
    alone (2001:db8::/32 is reserved for documentation)."""
    return f"2001:db8:{RUN[:4]}:{next(_addresses):x}::1"


def from_address(address: str) -> dict:
    """`scope_base` for the test client: the request comes from this address."""
    return {"client": (address, 50000)}


async def login(client, email: str, password: str = PASSWORD, *, address: str | None = None):
    """Log in the way a program does (JSON); the client keeps the session cookie."""
    return await client.post(
        "/login", json={"email": email, "password": password},
        scope_base=from_address(address or new_address()),
    )


def cookie_from(response, name: str = AUTH_COOKIE) -> str | None:
    """The value a response's Set-Cookie gives `name`."""
    from http.cookies import SimpleCookie

    for header in response.headers.getlist("Set-Cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        if name in parsed:
            return parsed[name].value
    return None

