"""The owner's panels in a real browser: a token and a share link made from the dashboard, the
shared page opened with no cookies, and an invite taken end to end (at phone width)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.browser import ARTIFACTS, PHONE, owner_dashboard
from tests.support.http import PASSWORD
from tests.support.settings import RUN


@pytest.fixture
async def owner_page(server, browser, owner, tenant):
    async with owner_dashboard(server, browser, owner, tenant, PHONE) as page:
        yield page


async def test_owner_makes_a_token_and_a_share_link_that_opens_without_cookies(
        server, browser, owner_page, tenant, owner):
    page = owner_page
    # A crawler's event (curl without -A): the health panel says it was ignored, in words.
    async with httpx.AsyncClient() as http:
        ignored = await http.post(f"{server.base}/api/analytics/track",
                                  json={"tenant_id": tenant.id, "event_type": "pageview"},
                                  headers={"User-Agent": "curl/8.5.0"})
    assert ignored.headers["X-Analytics-Ignored"] == "bot"
    await page.reload()
    await page.locator("#health-problems li",
                       has_text="1 event from a crawler was ignored").wait_for()
    await page.fill("#token-label", "weekly report")
    await page.get_by_role("button", name="Create token").click()
    secret = page.locator("#token-value")
    await secret.wait_for()
    assert re.fullmatch(r"lat_[\w-]+", await secret.text_content())
    await page.locator("#token-list li", has_text="weekly report").wait_for()
    await page.locator("#health-summary", has_text=re.compile("last hour")).wait_for()

    await page.get_by_role("button", name="Create share link").click()
    link = page.locator("#share-url")
    await link.wait_for()
    url = await link.text_content()
    assert "/s/las_" in url
    await page.locator("#token-secret").scroll_into_view_if_needed()
    await page.screenshot(path=str(ARTIFACTS / "owner-levers-360.png"), full_page=True)

    stranger = await browser.new_context(viewport=PHONE)  # no cookies at all
    try:
        shared = await stranger.new_page()
        await shared.goto(url)
        await shared.locator("#status[data-state=live]").wait_for()
        await shared.locator('[data-stat="visitors_today"]', has_text="0").wait_for()
        html = await shared.content()
        assert owner.email not in html and "csrf" not in html.lower()
        assert await shared.locator("button, form").count() == 0  # no controls
        await shared.screenshot(path=str(ARTIFACTS / "shared-360.png"), full_page=True)

        # Revoked: the open page is told within the recheck interval (30 s by default).
        await page.get_by_role("button", name="End link").click()
        await page.locator("#share-list .tag", has_text="ended").wait_for()
        await shared.locator("#ended").wait_for(state="visible", timeout=45_000)
    finally:
        await stranger.close()

    # Revoking the token from the list.
    await page.get_by_role("button", name=re.compile("Revoke token")).click()
    await page.locator("#token-list .tag", has_text="revoked").wait_for()


async def test_an_invite_taken_end_to_end(server, browser, owner_page, tenant):
    page = owner_page
    await page.get_by_role("button", name="Create invite link").click()
    invite = page.locator("#invite-url")
    await invite.wait_for()
    url = await invite.text_content()

    newcomer = await browser.new_context(viewport=PHONE)
    try:
        taker = await newcomer.new_page()
        await taker.goto(url)
        await taker.screenshot(path=str(ARTIFACTS / "invite-360.png"), full_page=True)
        email = f"invitee.{RUN}.{tenant.id}@example.com"
        await taker.fill("#email", email)
        await taker.fill("#password", PASSWORD)
        await taker.get_by_role("button", name="Create account and accept").click()
        await taker.wait_for_url(re.compile(rf"/dashboard/{tenant.id}$"))
        await taker.locator("#status[data-state=live]").wait_for()
        await taker.locator("#owner-list li", has_text=f"{email} (you)").wait_for()
    finally:
        await newcomer.close()
    await page.reload()
    await page.locator("#owner-list li", has_text=email).wait_for()
