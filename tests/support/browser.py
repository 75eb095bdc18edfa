"""What the browser tests share: where Chromium is and how it starts, a customer's site on
another origin, and what the server stored."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from realtime.keys import Keys
from tests.support.http import PASSWORD
from tests.support.polling import eventually
from tests.support.servers import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Headless Chromium says "HeadlessChrome", which the bot filter rightly drops. Set for the whole
# browser: a per-context override is lost by beacons sent while a page unloads.
DESKTOP_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/156.0.0.0 Safari/537.36")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_available() -> bool:
    """Whether Chromium is at CHROMIUM, installing it first when it is missing."""
    if os.access(CHROMIUM, os.X_OK):
        return True
    # `make test` runs scripts/browser.sh first; a bare `pytest` gets the same chance.
    if shutil.which("bash"):
        subprocess.run(["bash", str(ROOT / "scripts" / "browser.sh")], check=False)
    return os.access(CHROMIUM, os.X_OK)


@dataclass(frozen=True)
class Server:
    base: str  # http://localhost:PORT
    port: int
    env: dict[str, str]


class Shop:
    """A customer's site on another origin (another loopback port) that embeds t.js."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                html = pages.get(self.path.split("?")[0])
                body = (html or "not found").encode()
                self.send_response(200 if html else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://localhost:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.origin + path


@dataclass
class Stored:
    type: str
    metadata: dict
    page: str
    user_agent: str


async def stored_events(redis: Redis, keys: Keys, tenant_id: int) -> list[Stored]:
    """What the server accepted for this tenant, oldest first, read from the event stream."""
    entries = await redis.xrange(keys.events(keys.shard_of(tenant_id)))
    events = (orjson.loads(fields[b"e"]) for _, fields in entries if fields)
    return [Stored(e["type"], e["meta"], e["ref"], e["ua"]) for e in events
            if e["tenant"] == tenant_id]


async def wait_for_events(redis: Redis, keys: Keys, tenant_id: int,
                          done: Callable[[list[Stored]], bool],
                          timeout: float = 10) -> list[Stored]:
    """The tenant's stored events, once `done` accepts them."""
    stored: list[Stored] = []

    async def matched() -> bool:
        stored[:] = await stored_events(redis, keys, tenant_id)
        return done(stored)

    try:
        await eventually(matched, timeout, interval=0.1, what="the stored events to match")
    except AssertionError as error:
        raise AssertionError(f"{error}; stored: {stored}") from None
    return stored


def types(events: list[Stored]) -> list[str]:
    return [e.type for e in events]


DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 800}


@contextlib.asynccontextmanager
async def owner_dashboard(server, browser, owner, tenant, viewport: dict) -> AsyncIterator:
    """A logged-in owner's browser on the tenant's dashboard page, showing live numbers; the
    test fails if the page raised an error meanwhile."""
    context = await browser.new_context(viewport=viewport)
    response = await context.request.post(
        f"{server.base}/login", data={"email": owner.email, "password": PASSWORD},
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 200, await response.text()
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(e))
    await page.goto(f"{server.base}/dashboard/{tenant.id}")
    await page.locator("#status[data-state=live]").wait_for()
    yield page
    assert errors == []
    await context.close()
