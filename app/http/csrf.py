"""CSRF protection for every state-changing request a browser could be tricked into sending.

The scheme Flask-WTF uses: a random secret in the signed session cookie, and in each form a
timed, signed copy of it that must come back with the post. (Quart has no maintained CSRF
extension; this is the whole of it.) Requests sent as `application/json` pass: a page on
another site cannot send that content type without a CORS preflight, and no route but the
public tracking endpoint grants one.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable

from itsdangerous import BadData, URLSafeTimedSerializer
from quart import Quart, current_app, request, session

from app.http.errors import APIError

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SESSION_KEY = "csrf"
# A login form left open longer than this must be reloaded.
MAX_AGE_SECONDS = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
EXEMPT = "csrf_exempt_blueprints"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="csrf")


def csrf_token() -> str:
    """The value for a form's hidden `csrf_token` field (templates call it)."""
    if SESSION_KEY not in session:
        session[SESSION_KEY] = secrets.token_hex(32)
    return _serializer().dumps(session[SESSION_KEY])


def rotate() -> None:
    """A new secret, so forms rendered before a login stop working after it."""
    session[SESSION_KEY] = secrets.token_hex(32)


async def check() -> None:
    if request.method in SAFE_METHODS or request.blueprint in current_app.extensions[EXEMPT]:
        return
    # No route or not this method: nothing runs, and the answer is routing's 404 or 405 (with
    # its `Allow`), not a complaint about a token.
    if request.routing_exception is not None:
        return
    if request.mimetype == "application/json":
        return
    sent = (await request.form).get(FIELD) or request.headers.get(HEADER, "")
    expected = session.get(SESSION_KEY)
    try:
        value = _serializer().loads(sent, max_age=MAX_AGE_SECONDS) if sent else None
    except BadData:
        value = None
    if not isinstance(value, str) or not expected or not hmac.compare_digest(value, expected):
        raise APIError(
            400, "the form is missing its CSRF token or has expired: reload the page and "
                 "try again (programs: send application/json)",
        )


def init_app(app: Quart, exempt_blueprints: Iterable[str] = ()) -> None:
    """Checks every request of the app but those of `exempt_blueprints` (public endpoints
    that use no cookie)."""
    app.extensions[EXEMPT] = frozenset(exempt_blueprints)
    app.before_request(check)
    app.jinja_env.globals["csrf_token"] = csrf_token
