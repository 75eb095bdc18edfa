"""Browser tests: a real uvicorn server on a loopback port and Debian's Chromium, driven by
Playwright (no browser is ever downloaded). They skip only when Chromium cannot be had."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.settings import Settings
from tests.support.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    DESKTOP_UA,
    Server,
    Shop,
    chromium_available,
    owner_dashboard,
)
from tests.support.servers import ROOT, env_for, free_port, serve_command, wait_ready


@pytest.fixture(scope="session")
async def server(settings: Settings, database: str, redis: Redis) -> AsyncIterator[Server]:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    env = env_for(settings, ANALYTICS_ENV="development", PORT=port, WEB_CONCURRENCY=1)
    log = (ARTIFACTS / "server.log").open("wb")
    process = subprocess.Popen(serve_command(), cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    # Pages name the host "localhost": other suites check that no stored event holds the
    # client address 127.0.0.1, and a Referer of http://127.0.0.1:... would look like one.
    base = f"http://localhost:{port}"
    try:
        try:
            await wait_ready(base, process)
        except (RuntimeError, AssertionError) as error:
            raise RuntimeError(f"{error}; see {ARTIFACTS / 'server.log'}") from error
        yield Server(base, port, env)
    finally:
        # Waited for off the event loop: the session's other fixtures share the loop.
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
        log.close()


@pytest.fixture(scope="session")
def shop():
    shop = Shop()
    yield shop
    shop.httpd.shutdown()
    shop.httpd.server_close()


@pytest.fixture(scope="session")
async def browser():
    if not chromium_available():
        pytest.skip(f"Chromium is not at {CHROMIUM} and could not be installed")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*CHROMIUM_ARGS, f"--user-agent={DESKTOP_UA}"],
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


@pytest.fixture
async def dashboard(server, browser, owner, tenant):
    """A logged-in owner's browser on the tenant's dashboard page at desktop width."""
    async with owner_dashboard(server, browser, owner, tenant, DESKTOP) as page:
        yield page
