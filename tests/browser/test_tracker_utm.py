"""The tracker reports the landing address's UTM fields with the pageview, for breakdowns."""

from __future__ import annotations

from tests.browser.test_tracker import landing
from tests.support.browser import types, wait_for_events


async def test_pageview_carries_utm_fields(server, shop, context, tenant, redis, keys):
    url = shop.serve(f"/t{tenant.id}/utm", landing(server, f'data-tenant="{tenant.id}"'))
    page = await context.new_page()
    await page.goto(url + "?utm_source=ig&utm_medium=social&utm_campaign=spring&x=1",
                    referer="https://l.instagram.com/")
    events = await wait_for_events(redis, keys, tenant.id, lambda e: "pageview" in types(e))
    assert events[0].metadata == {
        "path": f"/t{tenant.id}/utm", "referrer": "https://l.instagram.com/",
        "utm_source": "ig", "utm_medium": "social", "utm_campaign": "spring"}
