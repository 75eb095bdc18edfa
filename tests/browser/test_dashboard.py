"""The owners' dashboard in a real browser, against a real server, fed by a real landing page."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.support.apps import flush
from tests.support.browser import ARTIFACTS
from tests.support.http import PASSWORD

HOSTILE_REFERRER = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
HOSTILE_AGENT = "Mozilla/5.0 <b id=agent-bold>bold</b> Chrome/156.0"


async def stat(page, name: str) -> str:
    return await page.locator(f'[data-stat="{name}"]').text_content()


async def until_stat(page, name: str, value: str, timeout: float = 10_000) -> None:
    await page.locator(f'[data-stat="{name}"]', has_text=re.compile(rf"^{value}$")).wait_for(
        timeout=timeout)


async def test_dashboard_follows_the_demo_page_live(server, context, dashboard, tenant):
    page = dashboard
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    assert await stat(page, "visitors_today") == "0"
    assert await stat(page, "whatsapp_clicks") == "0"

    visitor = await context.new_page()  # another browser context: a visitor, not the owner
    await visitor.goto(f"{server.base}/demo/{tenant.id}")
    await visitor.get_by_role("link", name="Order on WhatsApp").click()
    await visitor.get_by_role("button", name="View Cold brew kit").click()

    await until_stat(page, "pageviews_today", "1")
    await until_stat(page, "visitors_today", "1")
    await until_stat(page, "whatsapp_clicks", "1")
    await until_stat(page, "products_viewed", "1")
    await until_stat(page, "active_visitors", "1")
    feed = page.locator("#feed")
    await feed.get_by_text("WhatsApp click").wait_for()
    await feed.get_by_text("product: cold-brew-kit").wait_for()
    assert await page.evaluate("window.__sameDocument") is True

    # The week: seven bars, today last, from GET /api/analytics/<id>.
    bars = page.locator("#chart svg rect")
    await bars.nth(6).wait_for(state="attached")
    assert await bars.count() == 7
    # Today's bar follows the live count without waiting for the next summary.
    await page.locator("#chart svg text.value").nth(6).filter(has_text="1").wait_for()
    label = await page.locator("#chart svg").get_attribute("aria-label")
    assert re.fullmatch(r"Unique visitors per day: (\w+ \d+, ){6}\w+ 1", label), label


async def test_dashboard_shows_hostile_visitor_values_as_text(server, dashboard, tenant):
    page = dashboard
    # First over the websocket alone: the feed's REST endpoint is cut off.
    await page.route(re.compile(r".*/events$"), lambda route: route.abort())
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{server.base}/api/analytics/track",
            json={"tenant_id": tenant.id, "event_type": "pageview",
                  "metadata": {"referrer": HOSTILE_REFERRER}},
            headers={"User-Agent": HOSTILE_AGENT},
        )
    assert response.status_code == 200
    # Arrives over the websocket while the page is open ...
    await page.locator("#feed").get_by_text(HOSTILE_REFERRER, exact=False).wait_for()
    # ... then from GET /api/analytics/<id>/events after a reload.
    await page.unroute(re.compile(r".*/events$"))
    await page.reload()
    await page.locator("#feed").get_by_text(HOSTILE_REFERRER, exact=False).wait_for()
    text = await page.locator("#feed").inner_text()
    assert "referrer: " + HOSTILE_REFERRER in text
    # The feed names the visitor's device and browser (the raw user agent is not shown); the
    # hostile referrer's "site" is in that line too, as text.
    assert "Desktop · Chrome · from <script>" in text
    assert await page.locator("#feed script, #feed img, #agent-bold").count() == 0
    assert await page.evaluate("window.__pwned") is None


async def test_dashboard_reconnects_with_backoff_and_says_so(server, browser, owner, tenant):
    context = await browser.new_context()
    await context.request.post(f"{server.base}/login",
                               data={"email": owner.email, "password": PASSWORD})
    sockets = []

    def proxy(ws):
        ws.connect_to_server()
        sockets.append(ws)

    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(e))
    await page.route_web_socket(re.compile(r".*/live(\?.*)?$"), proxy)
    await page.goto(f"{server.base}/dashboard/{tenant.id}")
    status = page.locator("#status")
    await page.locator("#status[data-state=live]").wait_for()
    assert await status.text_content() == "Live"

    # Frames this dashboard does not know are ignored, and it stays live.
    sockets[0].send("not json")
    sockets[0].send('{"type": "something-new", "data": {"visitors_today": "<b>x</b>"}}')
    sockets[0].send('{"type": "ping"}')
    sockets[0].send('{"type": "update", "data": {"visitors_today": 5}}')
    await until_stat(page, "visitors_today", "5")  # the frames after them still count
    assert await status.text_content() == "Live"

    await sockets[0].close(code=1012, reason="restarting")
    await page.locator("#status[data-state=reconnecting]").wait_for()
    assert re.fullmatch(r"Reconnecting in \d+ s…", await status.text_content())
    await page.locator("#status[data-state=live]").wait_for(timeout=10_000)
    assert len(sockets) == 2
    assert errors == []
    await context.close()


async def test_snippet_copy_and_qr_downloads(server, dashboard, tenant):
    page = dashboard
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    snippet = await page.locator("#snippet").text_content()
    assert snippet == f'<script defer src="{server.base}/t.js" data-tenant="{tenant.id}"></script>'
    # Keyboard only: reach the button with Tab and press Enter.
    await page.locator("#snippet").click()
    for _ in range(20):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "copy":
            break
    await page.keyboard.press("Enter")
    await page.locator("#copy-status", has_text="Copied.").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == snippet

    assert await page.locator("img.qr").evaluate("img => img.complete && img.naturalWidth > 0")
    for kind, magic in [("svg", b"<?xml"), ("png", b"\x89PNG")]:
        async with page.expect_download() as info:
            await page.get_by_role("link", name=f"Download {kind.upper()}").click()
        download = await info.value
        assert download.suggested_filename == f"qr-tenant-{tenant.id}.{kind}"
        with open(await download.path(), "rb") as saved:
            assert saved.read().startswith(magic)


@pytest.mark.parametrize(("name", "width", "height"), [("phone", 360, 740), ("desktop", 1280, 900)])
async def test_dashboard_screenshots_and_no_sideways_scroll(app, server, dashboard, tenant, name,
                                                           width, height):
    page = dashboard
    async with httpx.AsyncClient() as http:
        for event_type, metadata in [("pageview", {"referrer": "https://www.google.com/"}),
                                     ("click_whatsapp", {"href": "https://wa.me/5491100000000"}),
                                     ("product_click", {"product": "ethiopia-guji"}),
                                     ("time_on_page", {"seconds": 74.2, "path": "/"}),
                                     ("qr_scan", {"path": f"/demo/{tenant.id}"})]:
            await http.post(f"{server.base}/api/analytics/track",
                            json={"tenant_id": tenant.id, "event_type": event_type,
                                  "metadata": metadata},
                            headers={"User-Agent": "Mozilla/5.0 (iPhone) Safari/604.1"})
    await until_stat(page, "qr_scans", "1")
    await flush(app)  # what the scheduler does every few seconds: the week's numbers follow
    await page.set_viewport_size({"width": width, "height": height})
    await page.reload()
    await page.locator("#status[data-state=live]").wait_for()
    await page.locator('[data-week="avg_time_on_page"]', has_text="1 min 14 s").wait_for()
    await page.locator("#chart svg").wait_for()
    await asyncio.sleep(1.3)  # let the highlight of changed numbers fade
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"dashboard-{name}.png", full_page=True)


async def test_dashboard_says_signed_out_instead_of_retrying_forever(server, browser, owner,
                                                                   tenant):
    context = await browser.new_context()
    await context.request.post(f"{server.base}/login",
                               data={"email": owner.email, "password": PASSWORD})
    sockets = []

    def proxy(ws):
        ws.connect_to_server()
        sockets.append(ws)

    page = await context.new_page()
    await page.route_web_socket(re.compile(r".*/live(\?.*)?$"), proxy)
    await page.goto(f"{server.base}/dashboard/{tenant.id}")
    await page.locator("#status[data-state=live]").wait_for()

    logout = await context.request.post(f"{server.base}/logout", data={})
    assert logout.ok, await logout.text()
    await sockets[0].close(code=1012, reason="restarting")
    await page.locator("#status[data-state=offline]").wait_for(timeout=10_000)
    assert await page.locator("#status").text_content() == "Signed out · log in again"
    assert await page.get_by_role("link", name="log in again").get_attribute("href") == "/login"
    await context.close()
