"""The `scheduler` process: drains raw events, flushes counters and applies retention.

Its jobs are plain async functions of `rollups/`; this module only wires clients, timing,
backoff and shutdown. `analytics flush` runs the same cycle once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.exceptions import ResponseError

from app.clients import STORE_ERRORS, Clients, opened
from app.heap import long_lived
from app.settings import Settings
from realtime.persistence import UNKNOWN, persistence_warnings
from rollups.breakdowns import Bounds
from rollups.cycle import drain_and_flush
from rollups.drain import consumer_name
from rollups.locks import Locking
from rollups.periods import closed_parts
from rollups.retention import drop_expired
from rollups.spans import build_all

log = logging.getLogger("analytics.scheduler")


@dataclass
class Worker:
    """The scheduler's state between jobs: its clients, and backoff after failures."""

    clients: Clients
    consumer: str = field(default_factory=consumer_name)
    known_months: set[dt.date] = field(default_factory=set)
    bounds: dict[int, Bounds] = field(default_factory=dict)  # of breakdowns, per shard
    failures: int = 0
    resume_at: float = 0.0
    breakdowns_at: float = 0.0  # when the queued events are next counted into breakdowns
    persistence_checked: bool = False
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    monotonic: Callable[[], float] = time.monotonic

    async def flush(self, locking: Locking = Locking.TRY,
                    count_breakdowns: bool = True) -> tuple[int, int]:
        """One drain and one flush of every shard, and with `count_breakdowns` the queued
        events counted into the breakdowns: (events stored, tenant-days flushed)."""
        c = self.clients
        return await drain_and_flush(c.redis, c.pool, c.keys, c.scripts, consumer=self.consumer,
                                     locking=locking, known_months=self.known_months,
                                     count_breakdowns=count_breakdowns, bounds=self.bounds)

    async def keep_flushing(self) -> None:
        """Passes until `stopped`, at most one an interval; after a pass that took longer
        than the interval, the next at once. (Not an APScheduler job: with one instance at a
        time it skips the ticks a running pass missed, and the backlog waits for the next.)"""
        interval = self.clients.settings.flush_interval_seconds
        while not self.stopped.is_set():
            started = self.monotonic()
            await self.tick()
            await self.pause(interval - (self.monotonic() - started))

    async def pause(self, seconds: float) -> None:
        """Waits `seconds`, or until `stopped`."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self.stopped.wait()

    async def tick(self) -> None:
        """One pass, with exponential backoff while Redis or Postgres fail."""
        if self.monotonic() < self.resume_at:
            return
        due = self.monotonic() >= self.breakdowns_at
        try:
            events, rollups = await self.flush(count_breakdowns=due)
        except Exception as error:
            self.failures += 1
            settings = self.clients.settings
            delay = min(settings.flush_max_backoff,
                        settings.flush_interval_seconds * 2 ** self.failures)
            self.resume_at = self.monotonic() + delay
            log.error("flush failed: %s (%s: %s); nothing is lost, retrying in %d s",
                      await self.diagnose(), type(error).__name__, error, delay)
            return
        if due:
            self.breakdowns_at = self.monotonic() + self.clients.settings.breakdown_interval
        if self.failures:
            log.info("flush recovered after %d failed attempts", self.failures)
            self.persistence_checked = False  # Redis may have come back with other settings
        self.failures = 0
        if not self.persistence_checked:
            await self.check_persistence()
        if events or rollups:
            log.info("stored %d events, flushed %d tenant-days", events, rollups)

    async def check_persistence(self) -> None:
        """In production, logs a warning when Redis would lose accepted events on a restart
        (realtime.persistence); checked at start and again after each recovery, once Redis
        answers."""
        settings = self.clients.settings
        if not settings.production:
            self.persistence_checked = True
            return
        try:
            async with asyncio.timeout(settings.store_probe_timeout):
                warnings = await persistence_warnings(self.clients.redis)
        except Exception as error:
            if isinstance(error, STORE_ERRORS) and not isinstance(error, ResponseError):
                return  # Redis does not answer: the first flush that works checks again
            warnings = [UNKNOWN.format(error=f"{type(error).__name__}: {error}")]
        self.persistence_checked = True
        for warning in warnings:
            log.warning("%s", warning)
        if not warnings:
            log.info("Redis persistence is on: accepted events survive a Redis restart")

    async def diagnose(self) -> str:
        """Which store does not answer, for the operator: a connection error alone names
        neither (and the log hides the address it names)."""
        c = self.clients
        probes = {"Redis": c.redis.ping, "Postgres": lambda: c.pool.fetchval("SELECT 1")}
        down = []
        for name, probe in probes.items():
            try:
                async with asyncio.timeout(c.settings.store_probe_timeout):
                    await probe()
            except Exception:
                down.append(name)
        if not down:
            return "Redis and Postgres both answer"
        return " and ".join(down) + (" does not answer" if len(down) == 1 else " do not answer")

    async def retention(self) -> None:
        try:
            async with self.clients.pool.acquire() as conn:
                dropped = await drop_expired(conn, dt.datetime.fromtimestamp(
                    self.clients.clock(), dt.UTC), self.clients.settings.retention_days)
        except Exception as error:
            log.error("retention failed (%s: %s)", type(error).__name__, error)
            return
        if dropped:
            log.info("dropped expired partitions: %s", ", ".join(dropped))


    async def spans(self) -> None:
        """Builds the spans of days that are over, so long periods read few rows."""
        c = self.clients
        try:
            made = await build_all(c.pool, c.scripts, c.keys, c.clock(), closed_parts)
        except Exception as error:
            log.error("building spans failed (%s: %s)", type(error).__name__, error)
            return
        if made:
            log.info("built %d spans", made)


async def serve(settings: Settings) -> None:
    async with opened(settings) as clients:
        await run(Worker(clients), settings)


async def run(worker: Worker, settings: Settings) -> None:
    scheduler = AsyncIOScheduler(timezone=dt.UTC)
    scheduler.add_job(worker.retention, "interval", hours=1, max_instances=1, coalesce=True,
                      next_run_time=dt.datetime.now(dt.UTC))
    scheduler.add_job(worker.spans, "interval", seconds=settings.spans_interval,
                      max_instances=1, coalesce=True, next_run_time=dt.datetime.now(dt.UTC))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stopped.set)
    log.info("scheduler started: flush every %d s", settings.flush_interval_seconds)
    await worker.check_persistence()  # before the first flush, which would check it too
    scheduler.start()
    with long_lived():
        await worker.keep_flushing()  # until a signal, then the pass under way ends
    scheduler.shutdown(wait=False)
    # Leave as little as possible buffered for the next scheduler.
    await worker.tick()
    log.info("scheduler stopped")
