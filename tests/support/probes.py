"""Protected test-only routes: a REST endpoint and a websocket that go through `authorize()`
exactly as the product's GET endpoints and live socket do, and a page behind `require_owner()`.

`app` is an ASGI app for a real `web` subprocess: the product app plus these routes.
"""

from __future__ import annotations

from quart import Quart, websocket

from app.http.auth import authorize, require_owner

PROBE = "/api/analytics/<int:tenant_id>/probe"
PROBE_LIVE = "/api/analytics/<int:tenant_id>/probe/live"
PROBE_PAGE = "/probe-page"


def add_probes(app: Quart) -> Quart:
    @app.get(PROBE)
    async def probe(tenant_id: int) -> dict:
        principal = await authorize(tenant_id)
        return {"success": True, "kind": principal.kind, "tenant_id": tenant_id}

    @app.websocket(PROBE_LIVE)
    async def probe_live(tenant_id: int) -> None:
        principal = await authorize(tenant_id)
        await websocket.accept()
        await websocket.send_json({"type": "snapshot", "kind": principal.kind})

    @app.get(PROBE_PAGE)
    async def probe_page() -> str:
        principal = await require_owner()
        return f"<p>owner {principal.subject_id}</p>"

    return app


def _served() -> Quart:
    from app.factory import create_app

    return add_probes(create_app())


def __getattr__(name: str) -> Quart:
    # Built only when uvicorn asks for `tests.support.probes:app`, not when tests import the module.
    if name == "app":
        return _served()
    raise AttributeError(name)
