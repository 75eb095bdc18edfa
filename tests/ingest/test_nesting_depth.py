"""Deep JSON anywhere is a 4xx, never a 5xx (security review, second pass, finding 3:
metadata 300 levels deep gave a 500, as orjson writes at most 254 levels and reads 1024)."""

from __future__ import annotations

import orjson
import pytest

from realtime.validation import MAX_METADATA_DEPTH
from tests.support.http import track


def nested(levels: int, kind: str = "object") -> object:
    """`levels` of objects or arrays (or both, alternating), a number at the bottom."""
    value: object = 1
    for level in range(levels):
        as_array = kind == "array" or (kind == "mixed" and level % 2)
        value = [value] if as_array else {"k": value}
    return value


def body(metadata_levels: int, kind: str = "object") -> bytes:
    # Written out by hand: orjson.dumps itself stops at 254 levels.
    inner = b"1"
    for level in range(metadata_levels - 1):
        as_array = kind == "array" or (kind == "mixed" and level % 2)
        inner = b"[" + inner + b"]" if as_array else b'{"k":' + inner + b"}"
    metadata = b'{"k":' + inner + b"}"
    return b'{"tenant_id":%d,"event_type":"pageview","metadata":' + metadata + b"}"


@pytest.mark.parametrize("kind", ["object", "array", "mixed"])
@pytest.mark.parametrize("levels", [MAX_METADATA_DEPTH + 1, 253, 254, 255, 300, 400, 1000,
                                    1023, 1024, 1100, 5000])
async def test_metadata_too_deep_is_a_400(client, tenant, levels, kind):
    sent = body(levels, kind) % tenant.id
    response = await track(client, tenant.id, body=sent)
    if len(sent) > 16 * 1024:
        assert response.status_code == 413
        return
    assert response.status_code == 400, (levels, await response.get_data())
    assert "nests too deep" in (await response.get_json())["error"]


async def test_depth_outside_the_metadata_counts_too(client, tenant):
    document = {"tenant_id": tenant.id, "event_type": "pageview", "extra": nested(100, "array")}
    response = await track(client, tenant.id, body=orjson.dumps(document))
    assert response.status_code == 400


async def test_the_deepest_metadata_allowed_is_stored_and_read_back(client, app, tenant,
                                                                     auth_headers):
    from tests.support.apps import flush

    metadata = nested(MAX_METADATA_DEPTH - 1, "mixed")  # inside the metadata object: 32 levels
    # More brackets than levels, so the depth is walked, not just bounded by counting.
    metadata = {"deep": metadata, "wide": [[1], [2], {"a": [3]}]}
    response = await track(client, tenant.id, metadata=metadata)
    assert response.status_code == 200, await response.get_data()
    # Read back through every envelope: the recent-events feed, before and after the flush.
    for _ in range(2):
        feed = await client.get(f"/api/analytics/{tenant.id}/events", headers=auth_headers)
        assert feed.status_code == 200
        assert (await feed.get_json())["events"][0]["metadata"] == metadata
        await flush(app)


async def test_many_brackets_that_are_not_deep_are_fine(client, tenant):
    wide = {f"k{i}": [[1], {"a": [2]}] for i in range(40)}
    response = await track(client, tenant.id, metadata={"wide": wide, "text": "[[[[{{{{" * 10})
    assert response.status_code == 200, await response.get_data()


@pytest.mark.parametrize("levels", [300, 1000, 5000])
async def test_deep_json_elsewhere_is_never_a_5xx(client, levels):
    deep = b"[" * levels + b"]" * levels
    login = await client.post("/login", data=deep, headers={"Content-Type": "application/json"})
    assert login.status_code == 400
    # /logout reads no body: any JSON is fine.
    logout = await client.post("/logout", data=deep, headers={"Content-Type": "application/json"})
    assert logout.status_code == 200
