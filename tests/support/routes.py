"""The product's public surface, and how a test fills in a route's arguments to call it."""

from __future__ import annotations

import re

# The whole public surface. Everything else needs a token or a session.
PUBLIC = frozenset({
    "/healthz",                 # liveness probe
    "/readyz",                  # readiness probe: whether Redis and Postgres answer, events waiting
    "/openapi.json",            # API description and its viewers
    "/docs",
    "/redocs",
    "/scalar",
    "/static/<path:filename>",  # the tracker's and the pages' assets
    "/login",                   # the way in
    "/logout",                  # only ever ends the caller's own session
    "/api/analytics/track",     # landing pages send events without credentials
    "/t.js",                    # the tracker script
    "/demo/<int:tenant_id>",    # a sample landing page, no data in it
})
_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def sample_path(rule: str, tenant_id: int) -> str:
    """The rule with its arguments filled in; ints get a real tenant, so a 404 cannot pass
    for a refusal."""
    return _ARGUMENT.sub(lambda m: str(tenant_id) if m.group(1) == "int" else "x", rule)


def is_api(rule: str) -> bool:
    return rule.startswith("/api/")
