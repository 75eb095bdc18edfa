"""HSTS: every answer of a production service says "https only, for a year", the /track fast
path's included; a development one never does (it would pin localhost to https)."""

from __future__ import annotations

import pytest

from tests.support.apps import quart_view, serving_app
from tests.support.http import track

HSTS = "max-age=31536000; includeSubDomains"


def _get_paths(app, tenant_id: int) -> list[str]:
    return sorted({rule.rule.replace("<int:tenant_id>", str(tenant_id))
                   for rule in app.url_map.iter_rules()
                   if not rule.websocket and "GET" in rule.methods
                   and "filename" not in rule.arguments})


async def _answers(app, tenant_id: int) -> dict[str, object]:
    """One answer of each kind: every GET route (most refuse without credentials), a missing
    page, the /track fast path (accepted and refused), Quart's own /track view, a preflight."""
    client = app.test_client()
    answers = {path: await client.get(path) for path in _get_paths(app, tenant_id)}
    answers["/no-such-page"] = await client.get("/no-such-page")
    answers["track 200"] = await track(client, tenant_id)
    answers["track 400"] = await track(client, None, body=b"nope")
    answers["track OPTIONS"] = await client.options("/api/analytics/track")
    fast = app.asgi_app
    app.asgi_app = quart_view(app)  # behind the fast paths: Quart's view of the same endpoint
    try:
        answers["track via Quart"] = await track(client, tenant_id)
    finally:
        app.asgi_app = fast
    assert answers["track 200"].status_code == 200
    assert answers["track via Quart"].status_code == 200
    assert "/t.js" in answers and "/healthz" in answers
    return answers


async def test_production_answers_always_carry_hsts(settings, database, redis, tenant):
    async with serving_app(settings, env="production", public_url="https://stats.example",
                           rate_limit_per_minute=10_000) as app:
        answers = await _answers(app, tenant.id)
    missing = {name: response.status_code for name, response in answers.items()
               if response.headers.get("Strict-Transport-Security") != HSTS}
    assert not missing
    for response in answers.values():
        assert len(response.headers.getlist("Strict-Transport-Security")) == 1


@pytest.mark.parametrize("env", ["development", "staging"])
async def test_other_modes_send_no_hsts(settings, database, redis, tenant, env):
    async with serving_app(settings, env=env, rate_limit_per_minute=10_000) as app:
        answers = await _answers(app, tenant.id)
    sent = [name for name, response in answers.items()
            if "Strict-Transport-Security" in response.headers]
    assert not sent
    assert all(r.headers.get("X-Content-Type-Options") == "nosniff" for r in answers.values())
