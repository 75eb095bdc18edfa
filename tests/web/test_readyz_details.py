"""/readyz: the status code for anyone, the details (what is wrong, buffer depths) for the host
itself or a valid API token only (security review, second pass, finding 12)."""

from __future__ import annotations

import pytest

from tests.support.apps import serving_app
from tests.support.http import from_address, new_address
from tests.support.settings import make_settings

DETAILS = {"buffered_events", "buffer_bound_per_shard"}


async def ready(client, address: str, headers: dict | None = None):
    response = await client.get("/readyz", headers=headers or {},
                                scope_base=from_address(address))
    return response.status_code, await response.get_json()


async def test_anyone_gets_the_status_code_without_details(client):
    status, body = await ready(client, new_address())
    assert status == 200 and body == {"success": True}
    status, body = await ready(client, "198.51.100.9", {"Authorization": "Bearer lat_forged"})
    assert status == 200 and body == {"success": True}


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
async def test_the_host_itself_gets_the_details(client, address):
    status, body = await ready(client, address)
    assert status == 200 and body.keys() >= DETAILS


async def test_a_valid_token_gets_the_details(client, auth_headers):
    status, body = await ready(client, new_address(), auth_headers)
    assert status == 200 and body.keys() >= DETAILS


async def test_behind_a_proxy_the_client_it_names_decides(settings, database, redis):
    async with serving_app(settings, trusted_proxy_hops=1) as app:
        client = app.test_client()
        # The proxy runs on the host: every request comes from 127.0.0.1.
        status, body = await ready(client, "127.0.0.1", {"X-Forwarded-For": "203.0.113.4"})
        assert body == {"success": True}
        status, body = await ready(client, "127.0.0.1", {"X-Forwarded-For": "127.0.0.1"})
        assert body.keys() >= DETAILS


async def test_not_ready_says_what_only_to_those_who_may_know(database):
    from app.factory import create_app

    app = create_app(make_settings(redis_url="redis://127.0.0.1:1/0"))
    async with app.test_app():
        client = app.test_client()
        status, body = await ready(client, new_address())
        assert status == 503 and body == {"success": False, "error": "not ready"}
        status, body = await ready(client, "127.0.0.1")
        assert status == 503 and "redis does not answer" in body["error"]
