"""Every fixed response header of the service: security headers on all answers, the pages'
Content-Security-Policy, the tracker's caching and the public endpoint's CORS."""

from __future__ import annotations

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
}
# Production is served over https only (PUBLIC_URL is https there): browsers that saw this once
# never try plain http again, so no first request can be downgraded. Not in development, where
# it would pin a developer's localhost to https for a year.
HSTS = {"Strict-Transport-Security": "max-age=31536000; includeSubDomains"}


def security_headers(production: bool) -> dict[str, str]:
    """The headers every answer carries, the /track fast path's included."""
    return {**SECURITY_HEADERS, **HSTS} if production else dict(SECURITY_HEADERS)

# No inline scripts or styles anywhere: every script and stylesheet is a file under /static.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The login page runs no script and loads nothing from elsewhere.
LOGIN_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
             "frame-ancestors 'none'")
TRACKER_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
    # Short, because the URL customers paste never changes; stale copies serve while refreshing.
    "Cache-Control": "public, max-age=3600, stale-while-revalidate=86400",
}
# /track: any landing page, on any origin, may send events.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}
