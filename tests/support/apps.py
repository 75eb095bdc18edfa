"""Apps in the test's event loop: one of its own with some settings changed, its time pinned,
and everything buffered drained and flushed now."""

from __future__ import annotations

import contextlib
import dataclasses

from app.factory import create_app
from app.settings import Settings
from rollups import breakdowns
from rollups.breakdown_queue import count_queue
from rollups.drain import consumer_name, drain_all
from rollups.flush import flush_all
from rollups.locks import Locking


class Clock:
    """A pinned time for an app: set `now`."""

    now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


def pin_clock(app) -> Clock:
    pinned = Clock()
    app.extensions["analytics"].clock = pinned
    return pinned


@contextlib.asynccontextmanager
async def serving_app(settings: Settings, **overrides):
    """An app of its own, serving, with some settings changed (timeouts, intervals)."""
    app = create_app(dataclasses.replace(settings, **overrides))
    async with app.test_app():
        yield app


def quart_view(app):
    """The ASGI callable behind every fast path (app/http/*fastpath.py): Quart's own routes,
    for tests that compare a fast path with the view it stands in for."""
    asgi = app.asgi_app
    while hasattr(asgi, "inner"):
        asgi = asgi.inner
    return asgi


async def drain(app, locking=None, *, count_breakdowns: bool = True,
                breakdown_cap: int = breakdowns.DEFAULT_CAP,
                bounds: dict[int, breakdowns.Bounds] | None = None, **kwargs) -> int:
    """Drain every buffered raw event now and count it into the breakdowns, as the
    scheduler does (at once, not at its interval; with count_breakdowns=False the events
    stay queued); the events stored. `bounds` carries each shard's breakdowns.Bounds from
    one call to the next."""
    svc = app.extensions["analytics"]
    locking = locking or Locking.WAIT
    events = await drain_all(svc.redis, svc.pool, svc.keys, svc.scripts,
                             consumer=consumer_name(), locking=locking, **kwargs)
    if count_breakdowns:
        await count_queue(svc.pool, svc.scripts, svc.keys, locking=locking, cap=breakdown_cap,
                          bounds=bounds)
    return events


async def flush(app, locking=None, **kwargs) -> tuple[int, int]:
    """Drain and flush everything now, as `analytics flush` does; (events, tenant-days)."""
    svc = app.extensions["analytics"]
    locking = locking or Locking.WAIT
    # Not rollups.cycle: a fault meant for the flush must not fire in the drain.
    events = await drain(app, locking)
    rollups = await flush_all(svc.redis, svc.pool, svc.keys, svc.scripts, locking=locking,
                              **kwargs)
    return events, rollups


class CountingPool:
    """A Postgres pool that counts the queries and connections asked of it."""

    COUNTED = frozenset({"fetch", "fetchrow", "fetchval", "execute", "executemany", "acquire"})

    def __init__(self, pool) -> None:
        self._pool = pool
        self.queries = 0

    def __getattr__(self, name: str):
        found = getattr(self._pool, name)
        if name not in self.COUNTED:
            return found

        def counted(*args, **kwargs):
            self.queries += 1
            return found(*args, **kwargs)
        return counted


@contextlib.contextmanager
def counting_queries(app):
    """Counts what the app asks of Postgres inside the block (its pool and its tenant
    directory's): `with counting_queries(app) as pg: ...; pg.queries`."""
    svc = app.extensions["analytics"]
    saved = svc.pool, svc.tenants.pool
    counter = CountingPool(svc.pool)
    svc.pool = svc.tenants.pool = counter
    try:
        yield counter
    finally:
        svc.pool, svc.tenants.pool = saved
