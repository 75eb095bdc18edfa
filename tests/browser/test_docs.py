"""/docs in Chromium: Swagger UI from our own files renders the API under the pages' CSP,
with no script from elsewhere and no CSP violation (security review, second pass, finding 2)."""

from __future__ import annotations

from tests.support.browser import ARTIFACTS


async def test_the_docs_render_under_the_strict_policy(server, context):
    page = await context.new_page()
    problems, requested = [], []
    page.on("console",
            lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requested.append(r.url))
    response = await page.goto(server.base + "/docs")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI fetched the document and drew its operations.
    await page.wait_for_selector(".opblock", timeout=20_000)
    paths = await page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/analytics/track" in path for path in paths), paths
    await page.screenshot(path=str(ARTIFACTS / "docs.png"))
    assert all(url.startswith(server.base) or url.startswith("data:") for url in requested), \
        requested
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    assert not problems, problems
