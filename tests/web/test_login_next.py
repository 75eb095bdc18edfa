"""Where a login form sends people back to: printable ASCII paths of ours only (security
review, second pass, finding 5: a `next` with DEL broke the answer after the session began)."""

from __future__ import annotations

import re

import pytest

from app.routes.login import safe_next
from tests.support.http import PASSWORD, from_address, new_address

ODD = ["/dashboard\x7f", "/dash\x7fboard/1", "/dashboard\x00", "/dashboard\x1b[2J",
       "/dashboard/caf\u00e9", "/dashboard\u2028", "/dashboard\u00a0", "/\u202e/dashboard",
       "/dashboard\x85", "/dashboard /x", "/dashboard\udcff"]


@pytest.mark.parametrize("target", ODD)
def test_anything_but_printable_ascii_goes_to_the_dashboard(target):
    assert safe_next(target) == "/dashboard"


def test_every_printable_ascii_path_is_kept():
    path = "/" + "".join(chr(c) for c in range(0x21, 0x7f) if chr(c) not in "\\/")
    assert safe_next(path) == path


@pytest.mark.parametrize("target", ODD[:6])
async def test_form_login_with_an_odd_next_lands_on_the_dashboard(client, owner, target):
    page = await client.get("/login", query_string={"next": target})
    html = (await page.get_data()).decode()
    assert 'name="next" value="/dashboard"' in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    response = await client.post("/login", form={"email": owner.email, "password": PASSWORD,
                                                 "csrf_token": token, "next": target},
                                 scope_base=from_address(new_address()))
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard"
