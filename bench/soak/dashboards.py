"""A dashboard of the soak: one websocket on /live that reads every frame and reconnects as the
dashboard's script does, and says whether its last frame shows what was accepted."""

from __future__ import annotations

import asyncio
import collections
import time

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from realtime.event_types import LIVE
from tests.support.http import bearer

# What a dashboard frame shows for each event type.
LIVE_FIELD = {t.name: t.live for t in LIVE}


class Dashboard:
    """One websocket on /live that reads every frame and reconnects like the dashboard does."""

    def __init__(self, url: str, token: str, tenant: int) -> None:
        self.url, self.token, self.tenant = url, token, tenant
        self.frames: collections.Counter[str] = collections.Counter()
        self.closes: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.connects = 0
        self.open = False
        self.baseline: dict | None = None  # the first snapshot's data
        self.last: dict | None = None
        self.last_at = 0.0
        self.max_gap = 0.0  # longest silence (no snapshot or update) while counting
        self.counting = False
        self.connected = asyncio.Event()
        self.stopping = False

    async def run(self) -> None:
        backoff = 0.5
        while not self.stopping:
            try:
                async with connect(self.url, additional_headers=bearer(self.token),
                                   open_timeout=20, max_queue=None) as ws:
                    self.connects += 1
                    self.open = True
                    backoff = 0.5
                    try:
                        async for message in ws:
                            self.frame(orjson.loads(message))
                    finally:
                        self.open = False
                    code = ws.close_code
                self.closes[str(code)] += 1
            except ConnectionClosed as closed:
                self.closes[str(closed.rcvd.code if closed.rcvd else "none")] += 1
            except (OSError, TimeoutError, InvalidHandshake) as error:
                self.errors[type(error).__name__] += 1
            if self.stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)

    def frame(self, frame: dict) -> None:
        kind = frame.get("type", "?")
        self.frames[kind] += 1
        if kind not in ("snapshot", "update"):
            return
        now = time.monotonic()
        if self.baseline is None:
            self.baseline = frame["data"]
            self.connected.set()
        if self.counting and self.last_at:
            self.max_gap = max(self.max_gap, now - self.last_at)
        self.last, self.last_at = frame["data"], now

    def behind(self, expected: dict[str, int]) -> dict[str, tuple[int, int]]:
        """Fields whose last frame does not show the baseline plus what was accepted."""
        if self.last is None or self.baseline is None:
            return {"no frame": (0, 0)}
        wrong = {}
        for kind, field in LIVE_FIELD.items():
            want = self.baseline[field] + expected.get(kind, 0)
            if self.last[field] != want:
                wrong[field] = (self.last[field], want)
        return wrong
