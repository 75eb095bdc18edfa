"""Requests the way clients make them: an event from a landing page, a login, credentials,
and the visitor or client address a request comes from."""

from __future__ import annotations

import itertools
import re
from http.cookies import SimpleCookie

import orjson

from tests.support.settings import RUN

PASSWORD = "correct horse battery staple"  # every `owner` fixture's
AUTH_COOKIE = "QUART_AUTH"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
# An inline <script> (one without `src`), which the pages' Content-Security-Policy forbids.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>")

_addresses = itertools.count(1)


async def track(client, tenant_id, event_type="pageview", metadata=None, *, headers=None,
                body=None, content_type="application/json", address=None):
    """POST an event the way a landing page does, from `address` if given (the test client's
    own otherwise); returns the response."""
    if body is None:
        document = {"tenant_id": tenant_id, "event_type": event_type}
        if metadata is not None:
            document["metadata"] = metadata
        body = orjson.dumps(document)
    sent = {"Content-Type": content_type, "User-Agent": BROWSER}
    sent.update(headers or {})
    return await client.post("/api/analytics/track", data=body, headers=sent,
                             scope_base=from_address(address) if address else None)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of an API token."""
    return {"Authorization": f"Bearer {token}"}


def visitor(n: int) -> dict[str, str]:
    """Headers that make the n-th distinct visitor (same address, own browser)."""
    return {"User-Agent": f"Mozilla/5.0 (X11; Linux x86_64) Firefox/140.{n}"}


def new_address() -> str:
    """A client address of the test's own, so per-client limits of one test leave the others
    alone (2001:db8::/32 is reserved for documentation)."""
    return f"2001:db8:{RUN[:4]}:{next(_addresses):x}::1"


def from_address(address: str) -> dict:
    """`scope_base` for the test client: the request comes from this address."""
    return {"client": (address, 50000)}


async def login(client, email: str, password: str = PASSWORD, *, address: str | None = None):
    """Log in the way a program does (JSON); the client keeps the session cookie."""
    return await client.post(
        "/login", json={"email": email, "password": password},
        scope_base=from_address(address or new_address()),
    )


def cookie_from(response, name: str = AUTH_COOKIE) -> str | None:
    """The value a response's Set-Cookie gives `name`."""
    for header in response.headers.getlist("Set-Cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        if name in parsed:
            return parsed[name].value
    return None
