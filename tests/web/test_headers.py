"""Security headers on every response, and error bodies that reveal nothing internal."""

from __future__ import annotations

import pytest

from tests.support.http import track

REQUIRED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def _paths(app, tenant_id: int) -> list[str]:
    paths = []
    for rule in app.url_map.iter_rules():
        if rule.websocket or "GET" not in rule.methods or "filename" in rule.arguments:
            continue
        paths.append(rule.rule.replace("<int:tenant_id>", str(tenant_id)))
    return sorted(set(paths))


async def test_every_get_route_sends_the_security_headers(app, client, tenant):
    paths = _paths(app, tenant.id)
    assert "/healthz" in paths and f"/api/analytics/{tenant.id}" in paths
    for path in paths:
        response = await client.get(path)
        for name, value in REQUIRED.items():
            assert response.headers.get(name) == value, (path, name)
        frame_guard = response.headers.get("X-Frame-Options") == "DENY" or \
            "frame-ancestors 'none'" in response.headers.get("Content-Security-Policy", "")
        assert frame_guard or path == "/t.js", path


@pytest.mark.parametrize("body", [b"{", b'{"tenant_id": [1], "event_type": {}}', b"\x00" * 100])
async def test_errors_reveal_no_internals(client, body):
    response = await track(client, None, body=body)
    text = (await response.get_data()).decode(errors="replace")
    assert response.status_code == 400
    for leak in ("Traceback", "File \"", "pydantic", "orjson", "asyncpg", "redis"):
        assert leak not in text


async def test_track_answers_carry_the_security_headers(client, tenant):
    for response in (await track(client, tenant.id), await track(client, None, body=b"nope")):
        for name, value in REQUIRED.items():
            assert response.headers.get(name) == value
