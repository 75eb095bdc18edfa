"""The product's public surface, and how a test fills in a route's arguments to call it."""

from __future__ import annotations

import re

# The whole public surface. Everything else needs a token or a session.
PUBLIC = frozenset({
    "/healthz",                 # liveness probe
    "/readyz",                  # readiness probe: whether Redis and Postgres answer, events waiting
    "/openapi.json",            # API description and its viewer
    "/docs",
    "/docs/assets/<name>",      # the viewer's script and stylesheet
    "/static/<path:filename>",  # the tracker's and the pages' assets
    "/login",                   # the way in
    "/logout",                  # only ever ends the caller's own session
    "/api/analytics/track",     # landing pages send events without credentials
    "/t.js",                    # the tracker script
    "/demo/<int:tenant_id>",    # a sample landing page, no data in it
    "/s/<token>",               # a share link: the token in the path is the credential
    "/invite/<token>",          # an invite: likewise; taking it is a CSRF-checked form
})
# Routes whose credential is the token in their path: a wrong one gets 404, nothing else.
TOKEN_IN_PATH = frozenset({"/s/<token>", "/invite/<token>"})
# Management: an owner's session only; a tenant token (which reads) gets 403.
OWNER_ONLY = frozenset({
    "/api/analytics/<int:tenant_id>/tokens",
    "/api/analytics/<int:tenant_id>/tokens/<int:token_id>",
    "/api/analytics/<int:tenant_id>/shares",
    "/api/analytics/<int:tenant_id>/shares/<int:share_id>",
    "/api/analytics/<int:tenant_id>/invites",
    "/api/analytics/<int:tenant_id>/team",
    "/api/analytics/<int:tenant_id>/owners/<int:user_id>",
})
# Provisioning: a platform token only; a tenant token and an owner's session get 403.
PLATFORM_ONLY = frozenset({
    "/api/platform/tenants",
    "/api/platform/users",
    "/api/platform/tenants/<int:tenant_id>/tokens",
})
_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def sample_path(rule: str, tenant_id: int) -> str:
    """The rule with its arguments filled in; ints get a real tenant, so a 404 cannot pass
    for a refusal, and a dimension a real one, so a 400 cannot either."""
    samples = {"int": str(tenant_id), "dimension": "page"}
    return _ARGUMENT.sub(lambda m: samples.get(m.group(1), "x"), rule)


def is_api(rule: str) -> bool:
    return rule.startswith("/api/")
