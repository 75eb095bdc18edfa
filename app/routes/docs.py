"""/docs: the interactive API documentation (Swagger UI) from files of ours.

Swagger UI's script and stylesheet come from the `swagger-ui-py` package, pinned in
pyproject.toml (no CDN, no floating version), and are served here; the page starts it with
`web/static/docs.js` (no inline script) under the same Content-Security-Policy as every page,
since it runs next to the owner's session cookie. quart-schema's own docs pages, which load
unpinned scripts from CDNs, are turned off in `app.factory`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from quart import Blueprint, Response, abort, render_template, send_from_directory
from quart_schema import hide

from app.http.headers import PAGE_CSP

blueprint = Blueprint("docs", __name__)

# Found without importing the package: its own Python code (integrations for other
# frameworks) is of no use here.
ASSETS = Path(importlib.util.find_spec("swagger_ui").submodule_search_locations[0]) / "static"
SERVED = {"swagger-ui-bundle.js", "swagger-ui.css"}


@blueprint.after_request
async def content_security_policy(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    return response


@blueprint.get("/docs")
@hide
async def docs() -> str:
    return await render_template("docs.html")


@blueprint.get("/docs/assets/<name>")
@hide
async def asset(name: str) -> Response:
    if name not in SERVED:
        abort(404)
    response = await send_from_directory(ASSETS, name)
    # The files change only with the pinned package, and a new version means a new deploy.
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
