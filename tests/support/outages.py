"""The harness of the outage tests (tests/faults/test_outages.py): a steady load of events
with every attempt recorded, what Postgres holds of them, and the processes and sockets the
tests watch while they break something.

"Accepted" always means answered 200. Each attempt's sequence number travels in the event's
metadata, so the raw `events` rows say exactly which attempts were stored.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import itertools
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import asyncpg
import httpx
import orjson
import websockets
from websockets.asyncio.client import connect

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from realtime.event_types import COUNTER_OF
from tests.support.http import bearer
from tests.support.polling import eventually

# Types whose counters the GET endpoints show, and pageviews, which only the rollups keep.
KINDS = ("click_whatsapp", "click_call", "click_toggle_currency", "qr_scan", "product_click",
         "pageview")
COLUMNS = ("events", *(COUNTER_OF[kind] for kind in KINDS))
VISITORS = 5  # browsers (user agents) the events come from
RATE = 60  # events a second, over all tenants
TRACK_DEADLINE = 1.0  # the contract: 503 within 1 s when Redis cannot be reached


def outage_settings(settings, **changes):
    # No 429 can blur the counts, and the scheduler works every second.
    return dataclasses.replace(settings, rate_limit_per_minute=1_000_000,
                               rate_limit_per_address_per_minute=0,
                               flush_interval_seconds=1, **changes)


# -- the load ---------------------------------------------------------------------------


@dataclasses.dataclass
class Attempt:
    seq: int
    tenant: int
    kind: str
    started: float
    ended: float = 0.0
    status: int | None = None
    error: str | None = None  # the transport error when no answer came

    @property
    def accepted(self) -> bool:
        return self.status == 200


class Load:
    """POSTs events at a steady `rate` a second, round-robin over tenants and event types.

    Each event goes out at its own time in its own task, whatever the ones before it are
    waiting for, as independent browsers would send them.
    """

    def __init__(self, base: str, tenants: list[int], rate: float = RATE) -> None:
        self.base = base
        self.tenants = tenants
        self.rate = rate
        self.attempts: list[Attempt] = []
        self._stop = asyncio.Event()
        self._inflight: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self._seq = itertools.count(1)

    async def __aenter__(self) -> Load:
        self._runner = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Sends nothing more and waits for every answer (or error) still to come."""
        self._stop.set()
        if self._runner is not None:
            await self._runner

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        async with httpx.AsyncClient(timeout=15, limits=limits) as http:
            loop = asyncio.get_running_loop()
            begin, n = loop.time(), 0
            while not self._stop.is_set():
                delay = begin + n / self.rate - loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    continue
                if delay < -1:  # the machine stalled: carry on at the rate, not in a burst
                    begin, n = loop.time(), 0
                task = asyncio.create_task(self._send(http, n))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                n += 1
            if self._inflight:
                await asyncio.wait(list(self._inflight))

    async def _send(self, http: httpx.AsyncClient, n: int) -> None:
        seq = next(self._seq)
        tenant = self.tenants[n % len(self.tenants)]
        kind = KINDS[(n // len(self.tenants)) % len(KINDS)]
        attempt = Attempt(seq, tenant, kind, time.monotonic())
        self.attempts.append(attempt)
        browser = f"Mozilla/5.0 (X11; Linux x86_64) Firefox/140.{seq % VISITORS}"
        try:
            response = await http.post(
                f"{self.base}/api/analytics/track", headers={"User-Agent": browser},
                json={"tenant_id": tenant, "event_type": kind, "metadata": {"seq": seq}})
            attempt.status = response.status_code
        except httpx.HTTPError as error:
            attempt.error = type(error).__name__
        attempt.ended = time.monotonic()

    def accepted(self, keep: Callable[[Attempt], bool] = lambda a: True) -> list[Attempt]:
        return [a for a in self.attempts if a.accepted and keep(a)]


def counts(attempts: Iterable[Attempt], tenants: list[int]) -> dict[int, dict[str, int]]:
    """What the rollups must hold for these accepted events, per tenant and column."""
    found = {tenant: dict.fromkeys(COLUMNS, 0) for tenant in tenants}
    for attempt in attempts:
        row = found[attempt.tenant]
        row["events"] += 1
        row[COUNTER_OF[attempt.kind]] += 1
    return found


def added(a: dict[int, dict[str, int]], b: dict[int, dict[str, int]]) -> dict[int, dict[str, int]]:
    return {t: {c: a[t][c] + b[t][c] for c in COLUMNS} for t in a}


def at_least(have: dict[int, dict[str, int]], floor: dict[int, dict[str, int]]) -> bool:
    return all(have[t][c] >= floor[t][c] for t in floor for c in COLUMNS)


# -- what Postgres holds ----------------------------------------------------------------


async def rollups(dsn: str, tenants: list[int]) -> dict[int, dict[str, int]]:
    """Per tenant, each column summed over its days (a connection of its own: it outlives
    any outage)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"""SELECT tenant_id, {", ".join(f"sum({c})::bigint AS {c}" for c in COLUMNS)}
                FROM daily_rollups WHERE tenant_id = ANY($1::bigint[]) GROUP BY tenant_id""",
            tenants)
    finally:
        await conn.close()
    found = {tenant: dict.fromkeys(COLUMNS, 0) for tenant in tenants}
    for row in rows:
        found[row["tenant_id"]] = {c: row[c] for c in COLUMNS}
    return found


async def stored_seqs(dsn: str, tenants: list[int]) -> collections.Counter:
    """How many raw `events` rows carry each sequence number."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT (metadata->>'seq')::bigint FROM events WHERE tenant_id = ANY($1::bigint[])",
            tenants)
    finally:
        await conn.close()
    return collections.Counter(row[0] for row in rows)


async def caught_up(dsn: str, tenants: list[int], attempts: list[Attempt],
                    timeout: float, what: str) -> None:
    """Waits until the rollups and raw events hold at least these accepted events."""
    want = counts(attempts, tenants)
    seqs = {a.seq for a in attempts}

    async def done() -> bool:
        return at_least(await rollups(dsn, tenants), want) and \
            seqs <= set(await stored_seqs(dsn, tenants))

    await eventually(done, timeout, interval=0.5, what=what)


async def warmed_up(dsn: str, tenants: list[int], load: Load) -> list[Attempt]:
    """Five seconds of `load`, then waits until the scheduler has stored every event accepted
    in them; returns those."""
    await asyncio.sleep(5)
    mark = time.monotonic()
    stored = load.accepted(lambda a: a.ended < mark)
    await caught_up(dsn, tenants, stored, 30, "the scheduler stores the warm-up")
    return stored


async def exactly(dsn: str, tenants: list[int], want: dict[int, dict[str, int]],
                  timeout: float, what: str) -> dict[int, dict[str, int]]:
    """Waits until the rollups reach `want`, failing at once should they pass it."""
    async def reached() -> bool:
        have = await rollups(dsn, tenants)
        assert at_least(want, have), f"counted more than accepted ({what}): {have} > {want}"
        return have == want

    await eventually(reached, timeout, interval=0.5, what=f"rollups == accepted ({what})")
    return await rollups(dsn, tenants)


# -- the other processes ----------------------------------------------------------------


class Logged:
    """A process started by `start_process`, its merged output read as it comes (a full pipe
    would stall it) so a test can wait for a line."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def matching(self, pattern: str, since: float = float("-inf"),
                 end: float = float("inf")) -> list[str]:
        """Lines read between `since` and `end` (monotonic time) that match `pattern`."""
        return [line for at, line in list(self.lines)
                if since <= at < end and re.search(pattern, line)]

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in list(self.lines))

    async def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = await asyncio.to_thread(self.process.wait)
        await asyncio.to_thread(self._reader.join, 5)
        return code


class Dashboard:
    """A live socket read in the background: its frames kept, its close code noted."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[tuple[float, dict]] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, ws_base: str, tenant: int, token: str) -> Dashboard:
        ws = await connect(f"{ws_base}/api/analytics/{tenant}/live",
                           additional_headers=bearer(token),
                           open_timeout=10)
        dashboard = cls(ws)
        await dashboard.frame(lambda f: True, 10)
        assert dashboard.frames[0][1]["type"] == "snapshot"
        return dashboard

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self.ws:
                self.frames.append((time.monotonic(), orjson.loads(message)))

    async def frame(self, wanted: Callable[[dict], bool], timeout: float,
                    since: float = float("-inf")) -> dict:
        """The first frame since `since` that `wanted` accepts, waiting for it if need be."""
        def found() -> dict | None:
            for at, frame in list(self.frames):
                if at >= since and wanted(frame):
                    return frame
            if self.reader.done():
                raise AssertionError(f"socket closed ({self.ws.close_code}) before the frame")
            return None

        return await eventually(found, timeout, what="such a frame")

    async def closed(self, timeout: float) -> int | None:
        """Waits for the server to end the socket; its close code."""
        await asyncio.wait_for(asyncio.shield(self.reader), timeout)
        return self.ws.close_code

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


async def reconnect(ws_base: str, tenant: int, token: str, timeout: float) -> Dashboard:
    """What the dashboard's script does: try again after a short delay until it works."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await Dashboard.open(ws_base, tenant, token)
        except (websockets.InvalidStatus, OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


class Reading(NamedTuple):
    began: float
    ended: float  # when its answer was in
    tenant: int
    status: int
    numbers: dict


class Readings:
    """Polls both GET endpoints of every tenant about once a second; every answer kept."""

    FIELDS = ("visitors_today", "visitors_week", "whatsapp_clicks", "call_clicks",
              "currency_toggles", "qr_scans")

    def __init__(self, base: str, tokens: dict[int, str]) -> None:
        self.base = base
        self.tokens = tokens
        self.answers: list[Reading] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Readings:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def read(self, http: httpx.AsyncClient, tenant: int) -> tuple[int, dict]:
        headers = bearer(self.tokens[tenant])
        summary = await http.get(f"{self.base}/api/analytics/{tenant}", headers=headers)
        if summary.status_code != 200:
            return summary.status_code, {}
        data = summary.json()["data"]
        today = await http.get(f"{self.base}/api/analytics/{tenant}/today", headers=headers)
        if today.status_code != 200:
            return today.status_code, {}
        numbers = {name: data[name] for name in self.FIELDS}
        numbers["products_viewed"] = today.json()["products_viewed"]
        numbers.update({f"visitors {day['date']}": day["visitors"] for day in data["last_7_days"]})
        return 200, numbers

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=15) as http:
            while True:
                for tenant in self.tokens:
                    at = time.monotonic()
                    try:
                        status, numbers = await self.read(http, tenant)
                    except httpx.HTTPError as error:
                        status, numbers = 0, {"error": type(error).__name__}
                    self.answers.append(Reading(at, time.monotonic(), tenant, status, numbers))
                await asyncio.sleep(1)

    def statuses(self, start: float = float("-inf"),
                 end: float = float("inf")) -> collections.Counter:
        return collections.Counter(r.status for r in self.answers if start <= r.began < end)

    def assert_unavailable_or_unchanged(self, start: float, end: float) -> None:
        """Every read made wholly between `start` and `end` answered 503, or the very numbers
        the tenant's read before it had answered. Wholly: the test's loop stands still while it
        starts a server again, so a read begun just before `end` may send its requests only
        once the server is back (seen: a 200 with the numbers of a flush that had committed
        as Postgres stopped, read after it came back)."""
        last: dict[int, dict] = {}
        checked = 0
        for r in self.answers:
            if start <= r.began and r.ended < end:
                assert r.status == 503 or (r.status == 200 and r.numbers == last.get(r.tenant)), \
                    (r.tenant, r.status, r.numbers, last.get(r.tenant))
                checked += 1
            if r.status == 200:
                last[r.tenant] = r.numbers
        assert checked >= len(self.tokens), f"{checked} reads between {start} and {end}"

    def assert_never_backwards(self) -> None:
        """No number any GET answered is ever lower than one answered before it."""
        best: dict[tuple[int, str], int] = {}
        for r in self.answers:
            if r.status != 200:
                continue
            for name, value in r.numbers.items():
                before = best.get((r.tenant, name), 0)
                assert value >= before, f"tenant {r.tenant}: {name} went from {before} to {value}"
                best[(r.tenant, name)] = value


def utc_day() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def assert_gets_match(answers: dict[int, dict], want: dict[int, dict[str, int]],
                      same_day: bool) -> None:
    for tenant, numbers in answers.items():
        for name, column in (("whatsapp_clicks", "whatsapp_clicks"), ("call_clicks", "call_clicks"),
                             ("currency_toggles", "currency_toggles"), ("qr_scans", "qr_scans")):
            assert numbers[name] == want[tenant][column], (tenant, name, numbers, want[tenant])
        if same_day:  # /today is one local day; the run may have crossed midnight
            assert numbers["products_viewed"] == want[tenant]["product_clicks"]
        assert 1 <= numbers["visitors_week"] <= VISITORS


async def tenants_with_tokens(conn, label: str, count: int = 4) -> dict[int, str]:
    tokens = {}
    for n in range(count):
        tenant = await create_tenant(conn, f"{label} {n}", "UTC")
        tokens[tenant.id] = (await create_token(conn, tenant.id, "outage test"))[1]
    return tokens


async def ready(base: str) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"{base}/readyz")).status_code == 200


# -- requests in flight -----------------------------------------------------------------


async def trickle(port: int, tenant: int, seq: int, sent: asyncio.Event,
                  go_on: asyncio.Event) -> int:
    """An event whose body arrives in two parts, `go_on` apart: in flight for that long.
    Returns the HTTP status it got."""
    body = orjson.dumps({"tenant_id": tenant, "event_type": "qr_scan", "metadata": {"seq": seq}})
    head = (f"POST /api/analytics/track HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body[:10])
        await writer.drain()
        sent.set()
        await go_on.wait()
        writer.write(body[10:])
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 20)
        return int(status_line.split()[1])
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
