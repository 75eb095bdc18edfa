"""The dashboard's insights in a real browser: the period picker, headline leads and
conversion with the change, a breakdown card's metric switch and "More", the export download,
and screenshots at phone and desktop widths."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.browser import ARTIFACTS

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0 Safari/537.36")
ANDROID = ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0 Mobile Safari/537.36")


async def seed(server, tenant_id):
    """Three visitors: two from Google, one from Instagram who sends a WhatsApp message."""
    sent = [(WINDOWS, "pageview", {"path": "/", "referrer": "https://www.google.com/"}),
            (ANDROID, "pageview", {"path": "/menu", "referrer": "https://www.google.es/"}),
            (IPHONE, "pageview", {"path": "/", "referrer": "https://l.instagram.com/",
                                  "utm_campaign": "spring"}),
            (IPHONE, "click_whatsapp", {"button_location": "hero"})]
    async with httpx.AsyncClient() as http:
        for agent, event_type, metadata in sent:
            response = await http.post(
                f"{server.base}/api/analytics/track", headers={"User-Agent": agent},
                json={"tenant_id": tenant_id, "event_type": event_type, "metadata": metadata})
            assert response.status_code == 200, response.text


async def loaded(page, period: str) -> None:
    await page.locator(f'#insights[data-loaded="{period}"]').wait_for()


def rows(page, dimension: str):
    return page.locator(f'.card[data-dimension="{dimension}"] .rows li')


async def test_period_picker_cards_and_export(app, server, dashboard, tenant):
    from tests.support.apps import flush

    page = dashboard
    await seed(server, tenant.id)
    await flush(app)
    await page.reload()
    await loaded(page, "7d")
    assert await page.locator('[data-total="visitors"]').text_content() == "3"
    assert await page.locator('[data-total="leads"]').text_content() == "1"
    assert await page.locator('[data-total="conversion_rate"]').text_content() == "33.3 %"
    assert (await page.locator('[data-change="leads"]').text_content()).startswith("▲")

    source = page.locator('.card[data-dimension="source"]')
    assert await rows(page, "source").first.locator(".name").text_content() == "Google"
    await source.get_by_role("button", name="Leads").click()
    assert await rows(page, "source").first.locator(".name").text_content() == "Instagram"
    assert await rows(page, "source").first.locator(".count").text_content() == "1"
    assert await source.get_by_role("button", name="Leads").get_attribute("aria-pressed") == "true"
    device = await rows(page, "device").locator(".name").all_text_contents()
    assert sorted(device) == ["Desktop", "Mobile"]

    await page.select_option("#period", "today")
    await loaded(page, "today")
    assert await page.locator("#series-step").text_content() == "hour"
    assert await page.locator("#series svg rect.bar").count() == 24
    assert await page.locator("#export").get_attribute("href") == \
        f"/api/analytics/{tenant.id}/export?period=today"

    async with page.expect_download() as info:
        await page.get_by_role("link", name="Export CSV").click()
    download = await info.value
    saved = await asyncio.to_thread(Path(await download.path()).read_bytes)
    archive = zipfile.ZipFile(io.BytesIO(saved))
    assert "series.csv" in archive.namelist()
    assert "Instagram,1,1,1" in archive.read("breakdown-source.csv").decode()


async def test_more_shows_every_value(app, server, dashboard, tenant):
    from tests.support.apps import flush

    page = dashboard
    async with httpx.AsyncClient() as http:
        for n in range(7):
            await http.post(f"{server.base}/api/analytics/track",
                            headers={"User-Agent": f"{WINDOWS} v{n}"},
                            json={"tenant_id": tenant.id, "event_type": "pageview",
                                  "metadata": {"path": f"/p{n}"}})
    await flush(app)
    await page.reload()
    await loaded(page, "7d")
    assert await rows(page, "page").count() == 5
    card = page.locator('.card[data-dimension="page"]')
    await card.get_by_role("button", name="More").click()
    await card.get_by_role("button", name="Less").wait_for()
    assert await rows(page, "page").count() == 7


@pytest.mark.parametrize(("name", "width", "height"), [("phone", 360, 740), ("desktop", 1280, 900)])
async def test_insights_screenshots_without_sideways_scroll(app, server, dashboard, tenant,
                                                            name, width, height):
    from tests.support.apps import flush

    page = dashboard
    await seed(server, tenant.id)
    await flush(app)
    await page.set_viewport_size({"width": width, "height": height})
    await page.reload()
    await loaded(page, "7d")
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    ARTIFACTS.mkdir(exist_ok=True)
    await page.locator("#insights").scroll_into_view_if_needed()
    await page.screenshot(path=ARTIFACTS / f"insights-{name}.png", full_page=True)
