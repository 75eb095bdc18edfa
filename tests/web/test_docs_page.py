"""/docs from pinned files of ours, under the pages' CSP; no other docs UI (security review,
second pass, finding 2: /docs, /redocs and /scalar ran unpinned CDN scripts on our origin).
Chromium renders it under that policy in tests/browser/test_docs.py."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from app.http.headers import PAGE_CSP
from app.routes.docs import ASSETS

ROOT = Path(__file__).resolve().parents[2]


async def test_docs_page_loads_only_our_own_files_under_the_page_policy(client):
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == PAGE_CSP
    html = (await response.get_data()).decode()
    scripts = re.findall(r"<script\b([^>]*)>", html)
    assert scripts and all('src="/' in attributes for attributes in scripts)  # none inline
    assert not re.search(r"<script\b[^>]*>[^<]+</script>", html)
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(references) == 3
    for reference in references:
        assert reference.startswith("/") and not reference.startswith("//"), reference
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.content_type.split(";")[0] in ("text/css", "text/javascript",
                                                     "application/javascript")


async def test_swagger_ui_is_the_pinned_packages_own(client):
    served = await (await client.get("/docs/assets/swagger-ui-bundle.js")).get_data()
    assert served == (ASSETS / "swagger-ui-bundle.js").read_bytes()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [d for d in dependencies if d.startswith("swagger-ui-py")] == ["swagger-ui-py==25.7.1"]


@pytest.mark.parametrize("path", ["/redocs", "/scalar", "/docs/assets/index.css",
                                  "/docs/assets/..%2F__init__.py",
                                  "/docs/assets/oauth2-redirect.html"])
async def test_nothing_else_is_served(client, path):
    assert (await client.get(path)).status_code == 404
