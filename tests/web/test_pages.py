"""The tracker script, the demo page and the dashboard's files, over HTTP (no browser)."""

from __future__ import annotations

import gzip
import re
from urllib.parse import urlsplit

import pytest

from app.accounts.tokens import create_token
from tests.support.apps import flush
from tests.support.http import INLINE_SCRIPT, bearer, track
from tests.support.servers import ROOT

TRACKER = ROOT / "web" / "static" / "t.js"
GZIP_BUDGET = 1500  # "1.5 KB", read strictly


async def test_tracker_is_served_as_cacheable_cross_origin_javascript(client):
    response = await client.get("/t.js", headers={"Origin": "https://shop.example"})
    assert response.status_code == 200
    assert response.mimetype == "application/javascript"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert "max-age=" in response.headers["Cache-Control"]
    assert "public" in response.headers["Cache-Control"]
    assert response.headers.get("ETag") or response.headers.get("Last-Modified")
    assert await response.get_data() == TRACKER.read_bytes()


async def test_tracker_answers_conditional_requests(client):
    first = await client.get("/t.js")
    etag = first.headers["ETag"]
    again = await client.get("/t.js", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_tracker_is_small_and_self_contained():
    source = TRACKER.read_bytes()
    assert len(gzip.compress(source, compresslevel=9)) < GZIP_BUDGET
    text = source.decode()
    assert "import " not in text and "require(" not in text
    # It posts where it was loaded from, never to a fixed host.
    assert "currentScript" in text and "http://" not in text and "https://" not in text


async def test_demo_page_embeds_the_tracker_and_the_tracked_elements(client, tenant):
    response = await client.get(f"/demo/{tenant.id}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = (await response.get_data()).decode()
    assert re.search(rf'<script defer src="/t\.js" data-tenant="{tenant.id}"></script>', html)
    assert 'href="https://wa.me/' in html
    assert 'href="tel:' in html
    assert 'data-analytics="click_toggle_currency"' in html
    products = re.findall(r'data-analytics="product_click" data-analytics-product="[a-z-]+"', html)
    assert len(products) == 3
    assert tenant.name in html


async def test_demo_page_of_unknown_tenant_is_404(client):
    response = await client.get("/demo/987654321")
    assert response.status_code == 404
    assert (await response.get_json())["success"] is False


@pytest.mark.parametrize("path", ["/demo/{id}", "/t.js"])
async def test_pages_have_a_strict_content_security_policy(client, tenant, path):
    response = await client.get(path.format(id=tenant.id))
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives["frame-ancestors"] == "'none'"


async def test_served_html_has_no_inline_script_or_style(client, tenant):
    html = (await (await client.get(f"/demo/{tenant.id}")).get_data()).decode()
    assert not INLINE_SCRIPT.search(html), "inline <script>"
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


@pytest.mark.parametrize("name", ["app.css", "dashboard.js", "demo.js"])
async def test_static_files_are_served(client, name):
    response = await client.get(f"/static/{name}")
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/{id}", "/dashboard/{id}/qr.svg",
                                  "/dashboard/{id}/qr.png"])
async def test_dashboard_pages_send_people_without_a_session_to_login(client, tenant,
                                                                      auth_headers, path):
    # A token is for programs: the pages and QR downloads are for logged-in owners.
    for headers in [{}, auth_headers]:
        response = await client.get(path.format(id=tenant.id), headers=headers)
        assert response.status_code == 303
        assert urlsplit(response.headers["Location"]).path == "/login"


async def test_recent_events_newest_first_buffered_or_drained(app, client, tenant, auth_headers):
    hostile = "<script>alert(1)</script>"
    assert (await track(client, tenant.id, "pageview", {"referrer": hostile},
                        headers={"Referer": "https://cafe.example/menu"})).status_code == 200
    await flush(app)  # the first now lives in Postgres only
    second = await track(client, tenant.id, "product_click", {"product": "tostada"})
    assert second.status_code == 200

    response = await client.get(f"/api/analytics/{tenant.id}/events", headers=auth_headers)
    assert response.status_code == 200
    document = await response.get_json()
    assert document["success"] is True
    events = document["events"]
    assert [e["event_type"] for e in events] == ["product_click", "pageview"]
    # Served as data, unchanged: escaping is the page's job when it renders them as text.
    assert events[1]["metadata"] == {"referrer": hostile}
    assert events[1]["page"] == "https://cafe.example/menu"
    assert events[0]["user_agent"].startswith("Mozilla/5.0")
    assert events[0]["ts"] >= events[1]["ts"] > 0


async def test_recent_events_need_credentials_for_the_tenant(client, pool, tenant):
    from app.accounts.tenants import create_tenant

    assert (await client.get(f"/api/analytics/{tenant.id}/events")).status_code == 401
    other = await create_tenant(pool, "Elsewhere")
    _, token = await create_token(pool, other.id)
    refused = await client.get(f"/api/analytics/{tenant.id}/events",
                               headers=bearer(token))
    assert refused.status_code == 403


async def test_snippet_and_qr_url_are_https_in_production(app):
    import dataclasses

    from app.routes.pages import landing_url, snippet

    svc = app.extensions["analytics"]
    original = svc.settings
    try:
        async with app.test_request_context("/dashboard/7", headers={"Host": "stats.example"}):
            assert snippet(7) == ('<script defer src="http://stats.example/t.js" '
                                  'data-tenant="7"></script>')
            svc.settings = dataclasses.replace(original, env="production")
            # TLS may end at a proxy: the page owners paste this into https pages.
            assert snippet(7) == ('<script defer src="https://stats.example/t.js" '
                                  'data-tenant="7"></script>')
            assert landing_url(7) == "https://stats.example/demo/7?src=qr"
    finally:
        svc.settings = original
