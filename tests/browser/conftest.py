"""Browser tests: a real uvicorn server on a loopback port and Debian's Chromium, driven by
Playwright (no browser is ever downloaded). They skip only when Chromium cannot be had."""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from app.config import Settings
from realtime.keys import Keys

ROOT = Path(__file__).parents[2]
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(settings: Settings, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "ANALYTICS_KEY_PREFIX": settings.key_prefix,
        "SECRET_KEY": settings.secret_key,
        "ANALYTICS_ENV": "development",
        "PORT": str(port),
    })
    return env


@dataclass(frozen=True)
class Server:
    base: str  # http://127.0.0.1:PORT
    port: int
    env: dict[str, str]



@pytest.fixture(scope="session")
async def server(settings: Settings, database: str, redis: Redis) -> AsyncIterator[Server]:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    env = server_env(settings, port)
    log = (ARTIFACTS / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.asgi:app", "--host", "127.0.0.1",
         "--port", str(port), "--no-server-header"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient() as http:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the server exited; see {ARTIFACTS / 'server.log'}")
                try:
                    if (await http.get(base + "/readyz", timeout=1)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not become ready in 20 s")
                await asyncio.sleep(0.1)
        yield Server(base, port, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class Shop:
    """A customer's site on another origin (another loopback port) that embeds t.js."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
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
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.origin + path


@pytest.fixture(scope="session")
def shop():
    shop = Shop()
    yield shop
    shop.httpd.shutdown()
    shop.httpd.server_close()


def _chromium_available() -> bool:
    if os.access(CHROMIUM, os.X_OK):
        return True
    # `make test` runs scripts/browser.sh first; a bare `pytest` gets the same chance.
    if shutil.which("bash"):
        subprocess.run(["bash", str(ROOT / "scripts" / "browser.sh")], check=False)
    return os.access(CHROMIUM, os.X_OK)


@pytest.fixture(scope="session")
async def browser():
    if not _chromium_available():
        pytest.skip(f"Chromium is not at {CHROMIUM} and could not be installed")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + [f"--user-agent={DESKTOP_UA}"]
        )
    except Exception as error:
        await playwright.stop()
        pytest.skip(f"Chromium at {CHROMIUM} does not start: {error}")
    yield browser
    await browser.close()
    await playwright.stop()


@pytest.fixture
async def context(browser):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    # Links to WhatsApp open nothing real during tests.
    await context.route("https://wa.me/**", lambda route: route.abort())
    await context.route("https://api.whatsapp.com/**", lambda route: route.abort())
    yield context
    await context.close()


@dataclass
class Stored:
    type: str
    metadata: dict
    page: str
    user_agent: str


async def stored_events(redis: Redis, keys: Keys, tenant_id: int) -> list[Stored]:
    """What the server accepted for this tenant, oldest first, read from the event stream."""
    entries = await redis.xrange(keys.events(keys.shard_of(tenant_id)))
    return [
        Stored(f[b"type"].decode(), orjson.loads(f[b"meta"]), f[b"ref"].decode(), f[b"ua"].decode())
        for _, f in entries
        if f[b"tenant"] == str(tenant_id).encode()
    ]


async def wait_for_events(redis: Redis, keys: Keys, tenant_id: int,
                          done: Callable[[list[Stored]], bool], timeout: float = 10) -> list[Stored]:
    deadline = time.monotonic() + timeout
    while True:
        events = await stored_events(redis, keys, tenant_id)
        if done(events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"events never matched; stored: {events}")
        await asyncio.sleep(0.1)


def types(events: list[Stored]) -> list[str]:
    return [e.type for e in events]
