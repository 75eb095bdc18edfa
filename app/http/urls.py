"""Absolute URLs of our own pages, for what we print or encode: snippets, QR codes, share and
invite links."""

from __future__ import annotations

from quart import request, url_for

from app.services import services


def external_url(endpoint: str, **values) -> str:
    """The absolute URL of `endpoint` at PUBLIC_URL: never at the request's Host header, which
    the client chooses, once the service knows its address (production always does)."""
    settings = services().settings
    if settings.public_url:
        return settings.public_url + url_for(endpoint, **values)
    # Development: the host the request came to. Production sits behind TLS that may end at a
    # proxy: an http:// snippet would be blocked as mixed content on the owner's https page.
    scheme = "https" if settings.production else request.scheme
    return url_for(endpoint, _external=True, _scheme=scheme, **values)
