"""Ids past Postgres's bigint in any URL are a JSON 404, never a 500 (security review, second
pass, finding 4: `/demo/99999999999999999999` gave a 500 and an asyncpg traceback)."""

from __future__ import annotations

import pytest
from quart.testing import WebsocketResponseError
from werkzeug.routing.converters import NumberConverter

from app.http.ids import MAX_ID, IdConverter
from tests.support.http import login

TOO_BIG = [str(MAX_ID + 1), "99999999999999999999", "9" * 5000, "0" * 30 + str(MAX_ID + 1)]


def test_every_integer_in_a_route_is_an_id(app):
    # tozo's idea: walk the routes, so a route added later cannot skip the bound.
    converters = [(rule.rule, converter) for rule in app.url_map.iter_rules()
                  for converter in rule._converters.values()]
    numbers = [(rule, c) for rule, c in converters if isinstance(c, NumberConverter)]
    assert len(numbers) >= 7  # the summaries, the socket, the pages
    for rule, converter in numbers:
        assert isinstance(converter, IdConverter), rule


async def expect_404(response) -> None:
    assert response.status_code == 404, await response.get_data()
    assert response.content_type == "application/json"
    assert (await response.get_json())["success"] is False


@pytest.mark.parametrize("number", TOO_BIG)
@pytest.mark.parametrize("path", ["/demo/{}", "/api/analytics/{}", "/api/analytics/{}/today",
                                  "/api/analytics/{}/events", "/dashboard/{}",
                                  "/dashboard/{}/qr.svg"])
async def test_ids_past_bigint_are_404(client, auth_headers, path, number):
    await expect_404(await client.get(path.format(number)))
    await expect_404(await client.get(path.format(number), headers=auth_headers))


async def test_ids_past_bigint_are_404_to_an_owner_too(app, owner):
    client = app.test_client()
    assert (await login(client, owner.email)).status_code == 200
    for path in ("/dashboard/{}", "/api/analytics/{}", "/demo/{}"):
        await expect_404(await client.get(path.format(MAX_ID + 1)))


@pytest.mark.parametrize("number", TOO_BIG[:2])
async def test_a_live_socket_past_bigint_is_refused_with_404(client, auth_headers, number):
    async with client.websocket(f"/api/analytics/{number}/live", headers=auth_headers) as ws:
        with pytest.raises(WebsocketResponseError) as refused:
            await ws.receive()
    await expect_404(refused.value.response)


async def test_the_largest_id_is_an_unknown_tenant_not_an_error(client, auth_headers):
    response = await client.get(f"/demo/{MAX_ID}")
    await expect_404(response)
    assert str(MAX_ID) in (await response.get_json())["error"]  # the tenant look-up said so
    assert (await client.get(f"/api/analytics/{MAX_ID}", headers=auth_headers)).status_code == 403


async def test_the_document_gives_the_range(client):
    document = await (await client.get("/openapi.json")).get_json()
    [parameter] = document["paths"]["/api/analytics/{tenant_id}"]["get"]["parameters"]
    assert parameter["schema"] == {"type": "integer", "minimum": 0, "maximum": MAX_ID}
