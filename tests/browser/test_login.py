"""A person's way in: the dashboard sends them to the login form and the form brings them back."""

from __future__ import annotations

from tests.support.browser import ARTIFACTS
from tests.support.http import PASSWORD


async def test_login_form_leads_back_to_the_tenant_page(server, browser, owner, tenant):
    context = await browser.new_context(viewport={"width": 360, "height": 740})
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(e))
    await page.goto(f"{server.base}/dashboard/{tenant.id}")
    assert page.url.startswith(f"{server.base}/login")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "login-phone.png")

    # Keyboard only, through the labels people read.
    await page.get_by_label("Email").fill(owner.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await page.wait_for_url(f"{server.base}/dashboard/{tenant.id}")
    await page.get_by_role("heading", name=tenant.name).wait_for()

    await page.goto(f"{server.base}/dashboard")
    await page.get_by_role("link", name=tenant.name).click()
    await page.wait_for_url(f"{server.base}/dashboard/{tenant.id}")
    assert errors == []
    await context.close()
