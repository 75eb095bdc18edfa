"""The tracker in a real browser: what a landing page sends, as the server stores it."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.browser import stored_events, types, wait_for_events


def landing(server, tenant_attr: str, body: str = "") -> str:
    """A customer's page on another origin, embedding the snippet the dashboard shows."""
    return f"""<!doctype html><html><head><title>Shop</title>
<script defer src="{server.base}/t.js" {tenant_attr}></script></head>
<body><h1>Shop</h1>{body}</body></html>"""


def watch_track_requests(page_or_context) -> list:
    sent = []
    page_or_context.on("request", lambda r: "/api/analytics/track" in r.url and sent.append(r))
    return sent


async def test_demo_page_sends_pageview_and_clicks(server, context, tenant, redis, keys):
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(e))
    await page.goto(f"{server.base}/demo/{tenant.id}", referer="https://search.example/?q=coffee")

    events = await wait_for_events(redis, keys, tenant.id, lambda e: "pageview" in types(e))
    view = events[0]
    assert view.type == "pageview"
    assert view.metadata == {"path": f"/demo/{tenant.id}",
                             "referrer": "https://search.example/?q=coffee"}
    assert view.page == f"{server.base}/demo/{tenant.id}"
    assert "Chrome" in view.user_agent

    await page.get_by_role("link", name="Order on WhatsApp").click()
    await page.get_by_role("button", name="View Ethiopia Guji").click()
    await page.get_by_role("button", name="Show prices in EUR").click()
    await page.get_by_role("button", name="Show prices in USD").click()
    events = await wait_for_events(redis, keys, tenant.id, lambda e: len(e) >= 5)
    by_type = {e.type: e for e in events}
    assert by_type["click_whatsapp"].metadata["href"].startswith("https://wa.me/")
    assert by_type["product_click"].metadata == {"product": "ethiopia-guji"}
    toggles = [e.metadata for e in events if e.type == "click_toggle_currency"]
    assert toggles == [{"currency": "EUR"}, {"currency": "USD"}]
    assert await page.locator(".price").first.text_content() == "$ 14.00"
    assert errors == []


async def test_cross_origin_page_sends_spa_qr_call_and_custom_events(server, shop, context, tenant,
                                                                     redis, keys):
    body = """<a id="call" href="tel:+15550100">Call</a>
<a id="wa" href="whatsapp://send?phone=15550100">WhatsApp app</a>
<button data-analytics="product_click" data-analytics-product="mug" data-analytics-color="red">
  <span>Mug</span></button>"""
    url = shop.serve(f"/t{tenant.id}/landing", landing(server, f'data-tenant="{tenant.id}"', body))
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(e))
    await page.goto(url + "?src=qr&utm_source=flyer")

    await wait_for_events(redis, keys, tenant.id,
                          lambda e: {"pageview", "qr_scan"} <= set(types(e)))
    # The QR marker leaves the address bar; other parameters stay.
    assert page.url == url + "?utm_source=flyer"

    # Links that would leave the page are held back here; the tracker listens before them.
    await page.evaluate("""document.querySelectorAll('a').forEach(
        a => a.addEventListener('click', e => e.preventDefault()))""")

    async def step(action: str, *sent: str) -> list:
        # Beacons may overtake each other, so each step waits for its own events.
        before = len(await stored_events(redis, keys, tenant.id))
        await page.evaluate(action) if "(" in action else await page.click(action)
        events = await wait_for_events(redis, keys, tenant.id,
                                       lambda e: len(e) >= before + len(sent))
        assert sorted(types(events[before:])) == sorted(sent)
        return events[before:]

    [call] = await step("#call", "click_call")
    [wa] = await step("#wa", "click_whatsapp")
    [product] = await step("button span", "product_click")
    await asyncio.sleep(0.3)
    navigated = await step("history.pushState({}, '', 'menu')", "time_on_page", "pageview")
    leave, menu = sorted(navigated, key=lambda e: e.type)[::-1]
    await step("history.replaceState({n: 1}, '', 'menu')")  # the same page: no pageview
    [custom] = await step("window.analytics.track('click_toggle_currency', {currency: 'ARS'})",
                          "click_toggle_currency")
    await asyncio.sleep(0.3)
    back = await step("history.back()", "time_on_page", "pageview")
    await asyncio.sleep(0.5)
    assert len(await stored_events(redis, keys, tenant.id)) == 2 + 3 + 2 + 1 + 2  # nothing more

    landing_path = f"/t{tenant.id}/landing"
    first = next(e for e in await stored_events(redis, keys, tenant.id) if e.type == "pageview")
    assert first.metadata == {"path": landing_path, "referrer": "", "utm_source": "flyer"}
    # The Referer header of a cross-origin request is only the sending site's origin.
    assert first.page == shop.origin + "/"
    assert call.metadata == {"href": "tel:+15550100"}
    assert wa.metadata == {"href": "whatsapp://send?phone=15550100"}
    assert product.metadata == {"product": "mug", "color": "red"}
    assert leave.type == "time_on_page"
    assert leave.metadata["path"] == landing_path + "?utm_source=flyer"
    assert 0.3 <= leave.metadata["seconds"] < 10
    assert menu.type == "pageview" and menu.metadata["path"] == f"/t{tenant.id}/menu"
    assert custom.metadata == {"currency": "ARS"}
    assert {e.metadata["path"] for e in back} == {f"/t{tenant.id}/menu", landing_path}
    assert errors == []


HIDE = """state => {
    Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
    Object.defineProperty(document, 'hidden', {configurable: true, get: () => state === 'hidden'});
    document.dispatchEvent(new Event('visibilitychange'));
}"""


async def test_time_on_page_counts_visible_time_when_hidden_and_when_left(server, context, tenant,
                                                                          redis, keys):
    page = await context.new_page()
    await page.goto(f"{server.base}/demo/{tenant.id}")
    await wait_for_events(redis, keys, tenant.id, lambda e: "pageview" in types(e))

    # Playwright keeps its pages visible, so the tab switch is played to the page: the
    # visibility state flips and the browser's event fires.
    await asyncio.sleep(1.2)
    def is_time_on_page(request) -> bool:
        return b"time_on_page" in (request.post_data_buffer or b"")

    async with page.expect_request(is_time_on_page) as sent:
        await page.evaluate(HIDE, "hidden")
    assert (await sent.value).headers["content-type"].startswith("text/plain")
    events = await wait_for_events(redis, keys, tenant.id, lambda e: "time_on_page" in types(e))
    first = [e for e in events if e.type == "time_on_page"][0].metadata
    assert 1.0 <= first["seconds"] < 5

    await asyncio.sleep(1.5)  # hidden time is not counted
    await page.evaluate(HIDE, "visible")
    await asyncio.sleep(0.5)
    await page.goto("about:blank")  # leaving the page sends the rest
    events = await wait_for_events(
        redis, keys, tenant.id, lambda e: types(e).count("time_on_page") == 2)
    second = [e for e in events if e.type == "time_on_page"][1].metadata
    assert 0.3 <= second["seconds"] < 1.5


async def test_fetch_keepalive_when_send_beacon_is_unavailable(server, context, tenant, redis,
                                                               keys):
    page = await context.new_page()
    await page.add_init_script("navigator.sendBeacon = undefined")
    async with page.expect_request(lambda r: "/api/analytics/track" in r.url) as sent:
        await page.goto(f"{server.base}/demo/{tenant.id}")
    request = await sent.value
    assert request.method == "POST"
    assert request.headers["content-type"].startswith("text/plain")
    assert request.resource_type == "fetch"
    await wait_for_events(redis, keys, tenant.id, lambda e: "pageview" in types(e))


@pytest.mark.parametrize("attr", ["", 'data-tenant=""', 'data-tenant="abc"', 'data-tenant="0"',
                                  'data-tenant="-4"', 'data-tenant="1.5"'])
async def test_misconfigured_snippet_sends_nothing_and_breaks_nothing(server, shop, context, attr):
    body = """<a href="https://wa.me/15550100" id="wa">WhatsApp</a>
<button data-analytics="product_click" data-analytics-product="x">X</button>"""
    url = shop.serve(f"/broken/{len(shop.pages)}", landing(server, attr, body))
    page = await context.new_page()
    errors, warnings = [], []
    page.on("pageerror", lambda e: errors.append(e))
    page.on("console", lambda m: m.type == "warning" and warnings.append(m.text))
    requests = watch_track_requests(context)  # the context also sees beacons of unloading pages
    await page.goto(url + "?src=qr")
    await page.wait_for_load_state("load")
    await page.evaluate(
        "document.querySelector('#wa').addEventListener('click', e => e.preventDefault())")
    await page.click("#wa")
    await page.click("button")
    # The page's own calls to the API must not throw either.
    assert await page.evaluate("window.analytics.track('pageview', {}) === undefined")
    await page.evaluate("history.pushState({}, '', 'other')")
    await page.goto("about:blank")
    await asyncio.sleep(0.5)
    assert requests == []
    assert errors == []
    assert any("data-tenant" in w for w in warnings)


async def test_a_named_element_wins_over_the_link_it_is(server, shop, context, tenant, redis, keys):
    body = """<a id="named" href="https://wa.me/15550100" data-analytics="click_whatsapp"
  data-analytics-button_location="footer">WhatsApp</a>
<a id="plain" href="https://api.whatsapp.com/send?phone=15550100"><b>Chat</b></a>
<a id="lookalike" href="https://wa.me.example.com/x">Not WhatsApp</a>"""
    url = shop.serve(f"/named/{tenant.id}", landing(server, f'data-tenant="{tenant.id}"', body))
    page = await context.new_page()
    await page.goto(url)
    await wait_for_events(redis, keys, tenant.id, lambda e: "pageview" in types(e))
    await page.evaluate("""document.querySelectorAll('a').forEach(
        a => a.addEventListener('click', e => e.preventDefault()))""")
    await page.click("#named")
    await wait_for_events(redis, keys, tenant.id, lambda e: len(e) == 2)
    await page.click("#plain b")  # the click lands on an element inside the link
    await wait_for_events(redis, keys, tenant.id, lambda e: len(e) == 3)
    await page.click("#lookalike")
    await asyncio.sleep(0.5)
    events = await stored_events(redis, keys, tenant.id)
    assert types(events) == ["pageview", "click_whatsapp", "click_whatsapp"]
    assert events[1].metadata == {"button_location": "footer"}
    assert events[2].metadata == {"href": "https://api.whatsapp.com/send?phone=15550100"}
