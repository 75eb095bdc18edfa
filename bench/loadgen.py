"""A constant-rate (open-loop) load generator for `POST /api/analytics/track`.

wrk keeps each connection busy as fast as the server answers (closed loop), and wrk2 is not
packaged here, so this sends on a schedule instead: request i is due at t0 + i / RATE,
whatever happened to the ones before. A dispatcher releases due requests every 2 ms to a
pool of keep-alive connections; when every connection is busy the due requests queue, so a
slow server shows up as a backlog and as latency counted from the due time (no coordinated
omission), not as a quietly lower rate.

Bodies are those of bench/track.lua (10,000 tenants, 100,000 visitors, the same mix of event
types) plus `time_on_page` with whole `metadata.seconds`, so every rollup column can be checked
exactly. `--hot-tenants` get `--hot-share` of the events: the tenants the soak's dashboards
watch, so their sockets see a steady stream of updates.

Prints one JSON line per `--report-every` seconds ({"type": "window", ...}) and one at the end
({"type": "final", ...}) with what was accepted (200) per event type and per hot tenant, every
other status, and errors. SIGINT or SIGTERM ends the run early (the final line is still printed).

    .venv/bin/python -m bench.loadgen --url http://127.0.0.1:8000 --rate 1500 --duration 60 \\
        --first-tenant 1 --tenants 10000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import random
import signal
import sys
import time
from urllib.parse import urlsplit

from realtime.event_types import NAMES, PAGEVIEW, TIMED

TRACK_PATH = "/api/analytics/track"
# Every event type, pageviews three times as often (bench/track.lua's mix plus time_on_page).
TYPES = (*NAMES, PAGEVIEW.name, PAGEVIEW.name)
IDLE_RECONNECT = 3.0  # uvicorn closes keep-alive connections idle for 5 s
RESPONSE_TIMEOUT = 10.0
DRAIN_TIMEOUT = 15.0


class Histogram:
    """Latencies in ms, in buckets 2% wide: percentiles without keeping every value."""

    STEP = math.log(1.02)

    def __init__(self) -> None:
        self.counts: collections.Counter[int] = collections.Counter()
        self.n = 0
        self.max = 0.0

    def add(self, ms: float) -> None:
        self.counts[int(math.log(max(ms, 0.01)) / self.STEP)] += 1
        self.n += 1
        self.max = max(self.max, ms)

    def percentile(self, q: float) -> float | None:
        if not self.n:
            return None
        rank, seen = q * self.n, 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return round(math.exp((bucket + 0.5) * self.STEP), 2)
        return round(self.max, 2)

    def summary(self) -> dict:
        return {"p50_ms": self.percentile(0.5), "p99_ms": self.percentile(0.99),
                "p999_ms": self.percentile(0.999), "max_ms": round(self.max, 2)}


class Window:
    def __init__(self) -> None:
        self.due = 0
        self.max_backlog = 0
        self.statuses: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.from_due = Histogram()
        self.from_send = Histogram()


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        url = urlsplit(args.url)
        self.host, self.port = url.hostname, url.port or 80
        self.rate = args.rate
        self.duration = args.duration
        self.args = args
        self.hot = [int(t) for t in args.hot_tenants.split(",") if t] if args.hot_tenants else []
        self.types = tuple(args.types.split(",")) if args.types else TYPES
        self.queue: collections.deque[float] = collections.deque()
        self.wakeup = asyncio.Event()
        self.stopping = False
        self.dispatch_done = False
        self.issued = 0
        self.sent = 0  # requests written (whatever came back)
        self.statuses: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.unknown = 0  # written, no answer read: the server may or may not have counted it
        self.accepted_types: collections.Counter[str] = collections.Counter()
        self.accepted_hot: dict[int, collections.Counter[str]] = {
            t: collections.Counter() for t in self.hot}
        self.time_on_page_ms = 0
        self.samples: list[str] = []  # a few bodies of non-200 answers
        self.from_due = Histogram()
        self.from_send = Histogram()
        self.window = Window()
        self.max_backlog = 0
        self.connects = 0
        self.in_flight = 0
        self.answered_by_second: collections.Counter[int] = collections.Counter()
        self.backlog_by_second: list[int] = []  # the backlog at the start of each second
        self.second = -1
        self.t0 = 0.0
        self.last_answer = 0.0
        self.dropped = 0  # due requests given up because no connection could be opened
        self.left_queued = 0  # due requests still queued when the drain timed out

    # -- requests ----------------------------------------------------------------------

    def request(self) -> tuple[bytes, int, str, int]:
        if self.hot and random.random() < self.args.hot_share:
            tenant = random.choice(self.hot)
        else:
            tenant = self.args.first_tenant + random.randrange(self.args.tenants)
        kind = random.choice(self.types)
        visitor = random.randrange(1, self.args.visitors + 1)
        seconds = 0
        if kind == TIMED.name:
            seconds = random.randint(1, 600)
            metadata = f'{{"seconds": {seconds}}}'
        else:
            metadata = '{"button_location": "hero"}'
        body = f'{{"tenant_id": {tenant}, "event_type": "{kind}", "metadata": {metadata}}}'.encode()
        address = f"198.{18 + (visitor >> 16) % 2}.{(visitor >> 8) % 256}.{visitor % 256}"
        head = (f"POST {TRACK_PATH} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/140.{visitor % 97}\r\n"
                f"X-Forwarded-For: {address}\r\n\r\n").encode()
        return head + body, tenant, kind, seconds

    def accepted(self, tenant: int, kind: str, seconds: int) -> None:
        self.accepted_types[kind] += 1
        self.time_on_page_ms += seconds * 1000
        if tenant in self.accepted_hot:
            self.accepted_hot[tenant][kind] += 1

    # -- the schedule ------------------------------------------------------------------

    async def dispatch(self, t0: float, end: float) -> None:
        loop = asyncio.get_running_loop()
        issued = 0
        while not self.stopping:
            now = loop.time()
            due = int(self.rate * (min(now, end) - t0))
            for i in range(issued, due):
                self.queue.append(t0 + i / self.rate)
            if due > issued:
                self.window.due += due - issued
                issued = due
                self.wakeup.set()
            self.max_backlog = max(self.max_backlog, len(self.queue))
            self.window.max_backlog = max(self.window.max_backlog, len(self.queue))
            second = int(now - t0)
            if second != self.second and now < end:
                self.backlog_by_second.append(len(self.queue))
                self.second = second
            if now >= end:
                break
            await asyncio.sleep(0.002)
        self.issued = issued

    async def next_due(self) -> float | None:
        while not self.queue:
            if self.stopping or self.dispatch_done:
                return None
            self.wakeup.clear()
            await self.wakeup.wait()
        return self.queue.popleft()

    async def connection(self) -> None:
        loop = asyncio.get_running_loop()
        reader = writer = None
        last_used = 0.0
        while True:
            due = await self.next_due()
            if due is None:
                break
            now = loop.time()
            if writer is not None and now - last_used > IDLE_RECONNECT:
                writer.close()
                reader = writer = None
            data, tenant, kind, seconds = self.request()
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                    self.connects += 1
                except OSError as error:
                    self.error(f"connect: {type(error).__name__}")
                    self.dropped += 1
                    await asyncio.sleep(0.1)
                    continue
            written = False
            self.in_flight += 1
            try:
                sent_at = loop.time()
                writer.write(data)
                written = True
                self.sent += 1
                async with asyncio.timeout(RESPONSE_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head[9:12])
                    lower = head.lower()
                    at = lower.find(b"\r\ncontent-length:")
                    length = int(lower[at + 17:lower.index(b"\r\n", at + 2)]) if at >= 0 else 0
                    body = await reader.readexactly(length) if length else b""
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                    ValueError) as error:
                name = "timeout" if isinstance(error, TimeoutError) else type(error).__name__
                self.error(name)
                if written:
                    self.unknown += 1
                writer.close()
                reader = writer = None
                continue
            finally:
                self.in_flight -= 1
            done = loop.time()
            last_used = self.last_answer = done
            self.answered_by_second[int(done - self.t0)] += 1
            self.statuses[str(status)] += 1
            self.window.statuses[str(status)] += 1
            for histogram, start in ((self.from_due, due), (self.window.from_due, due),
                                     (self.from_send, sent_at), (self.window.from_send, sent_at)):
                histogram.add((done - start) * 1000)
            if status == 200:
                self.accepted(tenant, kind, seconds)
            elif len(self.samples) < 10:
                self.samples.append(f"{status} {body[:200].decode(errors='replace')}")
            if b"connection: close" in lower:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    def error(self, name: str) -> None:
        self.errors[name] += 1
        self.window.errors[name] += 1

    # -- reporting ---------------------------------------------------------------------

    def emit(self, line: dict) -> None:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    async def report(self, t0: float) -> None:
        loop = asyncio.get_running_loop()
        every = self.args.report_every
        k = 1
        while True:
            await asyncio.sleep(max(0.0, t0 + k * every - loop.time()))
            window, self.window = self.window, Window()
            answered = sum(window.statuses.values())
            self.emit({"type": "window", "t": round(loop.time() - t0, 1), "seconds": every,
                       "due": window.due, "answered": answered,
                       "rate": round(answered / every, 1),
                       "accepted": window.statuses.get("200", 0),
                       "statuses": dict(window.statuses), "errors": dict(window.errors),
                       "backlog": len(self.queue), "max_backlog": window.max_backlog,
                       "in_flight": self.in_flight,
                       "latency_from_due": window.from_due.summary(),
                       "latency_from_send": window.from_send.summary()})
            k += 1

    async def run(self) -> dict:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        t0 = self.t0 = loop.time() + 0.05
        end = t0 + self.duration
        workers = [asyncio.create_task(self.connection()) for _ in range(self.args.connections)]
        reporter = asyncio.create_task(self.report(t0))
        cpu0 = time.process_time()
        await self.dispatch(t0, end)
        self.dispatch_done = True
        self.wakeup.set()
        elapsed = min(loop.time(), end) - t0
        # Requests still queued when the schedule ends are sent; ones still queued after the
        # drain timeout are counted as never sent.
        _, pending = await asyncio.wait(workers, timeout=DRAIN_TIMEOUT)
        self.stopping = True
        self.wakeup.set()
        self.unknown += self.in_flight  # cancelled while waiting for an answer
        self.left_queued = len(self.queue)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        reporter.cancel()
        # The rate is over the schedule, or until the last answer when the server was still
        # catching up after it: a backlog answered late does not count as on time.
        busy = max(elapsed, self.last_answer - t0)
        answered = sum(self.statuses.values())
        accepted = self.statuses.get("200", 0)
        return {
            "type": "final",
            "target_rate": self.rate,
            "connections": self.args.connections,
            "seconds": round(elapsed, 2),
            "seconds_until_last_answer": round(busy, 2),
            "due": self.issued,
            "sent": self.sent,
            "answered": answered,
            "achieved_rate": round(answered / busy, 1) if busy else 0.0,
            "accepted": accepted,
            "accepted_rate": round(accepted / busy, 1) if busy else 0.0,
            "statuses": dict(self.statuses),
            "non_200": answered - accepted,
            "errors": dict(self.errors),
            "unknown_outcome": self.unknown,
            "never_sent": self.dropped + self.left_queued,
            "max_backlog": self.max_backlog,
            "connects": self.connects,
            "latency_from_due": self.from_due.summary(),
            "latency_from_send": self.from_send.summary(),
            "accepted_by_type": dict(self.accepted_types),
            "accepted_time_on_page_ms": self.time_on_page_ms,
            "accepted_hot": {str(t): dict(c) for t, c in self.accepted_hot.items()},
            "non_200_samples": self.samples,
            "answered_by_second": [self.answered_by_second.get(i, 0)
                                   for i in range(max(self.answered_by_second, default=-1) + 1)],
            "backlog_by_second": self.backlog_by_second,
            "cpu_seconds": round(time.process_time() - cpu0, 1),
        }

    def stop(self) -> None:
        self.stopping = True
        self.wakeup.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--first-tenant", type=int, default=1)
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--hot-tenants", default="", help="comma-separated tenant ids")
    parser.add_argument("--hot-share", type=float, default=0.1)
    parser.add_argument("--report-every", type=float, default=10.0)
    parser.add_argument("--types", default="",
                        help="comma-separated event types (default: a mix of all)")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    final = asyncio.run(Generator(args).run())
    sys.stdout.write(json.dumps(final) + "\n")


if __name__ == "__main__":
    main()
