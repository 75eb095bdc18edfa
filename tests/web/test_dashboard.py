"""The dashboard pages and QR downloads over HTTP, for a logged-in owner."""

from __future__ import annotations

import re

import pytest

from app.routes.pages import render_qr
from tests.support.http import INLINE_SCRIPT, login


@pytest.fixture
async def session(client, owner):
    response = await login(client, owner.email)
    assert response.status_code == 200
    return client


async def test_tenant_list_shows_the_owners_tenants_escaped(session, pool, owner, tenant):
    from app.accounts.tenants import create_tenant
    from app.accounts.users import add_membership

    odd = await create_tenant(pool, '<b>Bar & "Grill"</b>')
    await add_membership(pool, owner.id, odd.id)
    stranger = await create_tenant(pool, "Not yours")

    response = await session.get("/dashboard")
    assert response.status_code == 200
    html = (await response.get_data()).decode()
    assert f'href="/dashboard/{tenant.id}"' in html and tenant.name in html
    assert "&lt;b&gt;Bar &amp; &#34;Grill&#34;&lt;/b&gt;" in html and "<b>Bar" not in html
    assert stranger.name not in html
    assert "Content-Security-Policy" in response.headers


async def test_tenant_page_has_snippet_qr_and_the_dashboard_script(session, tenant):
    response = await session.get(f"/dashboard/{tenant.id}")
    assert response.status_code == 200
    html = (await response.get_data()).decode()
    snippet = (f'&lt;script defer src=&#34;http://localhost/t.js&#34; '
               f'data-tenant=&#34;{tenant.id}&#34;&gt;&lt;/script&gt;')
    assert snippet in html
    assert f'src="/dashboard/{tenant.id}/qr.svg"' in html
    assert f'href="/dashboard/{tenant.id}/qr.png?download=1"' in html
    assert f'data-live="/api/analytics/{tenant.id}/live?events=1"' in html
    assert '<script defer src="/static/dashboard.js"></script>' in html
    assert not INLINE_SCRIPT.search(html)
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


async def test_another_tenants_pages_are_refused(session, pool):
    from app.accounts.tenants import create_tenant

    other = await create_tenant(pool, "Elsewhere")
    for path in [f"/dashboard/{other.id}", f"/dashboard/{other.id}/qr.svg"]:
        response = await session.get(path)
        assert response.status_code == 403
        assert (await response.get_json())["success"] is False


@pytest.mark.parametrize(("kind", "mimetype", "magic"), [
    ("svg", "image/svg+xml", b"<?xml"),
    ("png", "image/png", b"\x89PNG\r\n\x1a\n"),
])
async def test_qr_code_of_the_landing_page(session, tenant, kind, mimetype, magic):
    response = await session.get(f"/dashboard/{tenant.id}/qr.{kind}")
    assert response.status_code == 200
    assert response.mimetype == mimetype
    body = await response.get_data()
    assert body.startswith(magic)
    # The code is the demo landing page marked as a QR visit.
    assert body == render_qr(f"http://localhost/demo/{tenant.id}?src=qr", kind)
    assert "Content-Disposition" not in response.headers

    download = await session.get(f"/dashboard/{tenant.id}/qr.{kind}?download=1")
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="qr-tenant-{tenant.id}.{kind}"'
    )
