"""/login and /logout: cookie sessions for tenant owners, from the login form or from programs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from pydantic import RootModel, StrictStr, TypeAdapter, ValidationError
from quart import Blueprint, Response, redirect, render_template, request
from quart_auth import AuthUser, current_user, login_user, logout_user
from quart_schema import document_querystring, document_request, document_response

from app.accounts.sessions import end_session, log_in
from app.accounts.throttle import Throttled
from app.http import csrf
from app.http.auth import LoginRequired
from app.http.errors import APIError, document_errors, store_call
from app.http.headers import LOGIN_CSP
from app.http.openapi import HTMLPage
from app.services import services
from realtime.privacy import client_address

blueprint = Blueprint("login", __name__)

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass
class LoginRequest:
    email: StrictStr
    password: StrictStr


@dataclass
class LoginUser:
    id: int
    email: str


@dataclass
class LoginResponse:
    success: bool
    user: LoginUser


class LogoutRequest(RootModel[Any]):
    """Programs send JSON, any (it is not read); the logout form sends its CSRF field."""


@dataclass
class LogoutResponse:
    success: bool


@dataclass
class Redirect:
    """A form is redirected (303 See Other) to `Location`, a page of this site."""

    location: str


_credentials = TypeAdapter(LoginRequest)
DEFAULT_NEXT = "/dashboard"
PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]*")


@dataclass
class LoginPage:
    next: str = DEFAULT_NEXT


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only, never an open redirect
    (browsers read `//host` and `/\\host` as other sites), and only in printable ASCII: a
    path with anything else (DEL, a control character, a space, non-ASCII) cannot go into
    the `Location` header as it is, and no page of ours needs one."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or urlsplit(target).netloc or not PRINTABLE_ASCII.fullmatch(target)):
        return DEFAULT_NEXT
    return target


@blueprint.app_errorhandler(LoginRequired)
async def to_login_page(_: LoginRequired) -> Response:
    return redirect("/login?" + urlencode({"next": request.path}), 303)


@blueprint.get("/login")
@document_querystring(LoginPage)
@document_response(HTMLPage)
async def login_page() -> Response:
    """The login form for people.

    `next` is where to go after logging in: a path on this site, `/dashboard` otherwise.
    """
    page = await render_template("login.html", next=safe_next(request.args.get("next")))
    response = Response(page, content_type="text/html")
    response.headers["Content-Security-Policy"] = LOGIN_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/login")
@document_request(LoginRequest)
@document_response(LoginResponse)
@document_response(None, 303, Redirect)
@document_errors(400, 401, 413, 415, 429, 503)
async def login() -> Response | tuple[dict, int]:
    """Log in as a tenant owner and receive the session cookie.

    Programs send JSON `{"email", "password"}` and get 200; the login form (with its CSRF
    field) is redirected to `/dashboard`, or back to the page that sent it to log in. Wrong
    credentials get 401. After 20 failures from a client within 15 minutes, that client gets
    429 with `Retry-After`; after 5 failures for an account, the clients that failed on it
    get 429, and any other client is answered after a delay (1 s, doubling with each further
    failure, at most 10 s) instead, so nobody can lock an owner out.
    """
    is_form = request.mimetype in FORM_TYPES
    if is_form:
        data = dict(await request.form)
    elif request.mimetype == "application/json":
        # Not `get_json(silent=True)`: Quart decodes the body as UTF-8 outside its `silent`.
        try:
            data = orjson.loads(await request.get_data())
        except orjson.JSONDecodeError:
            data = None
    else:
        raise APIError(415, "send the credentials as application/json or from the login form")
    try:
        credentials = _credentials.validate_python(data)
    except ValidationError:
        raise APIError(400, 'send {"email": "...", "password": "..."}') from None

    svc = services()
    address = client_address(
        request.remote_addr, request.headers.getlist("X-Forwarded-For"),
        svc.settings.trusted_proxy_hops,
    )
    try:
        async with store_call():
            result = await log_in(
                svc.pool, svc.login_throttle, credentials.email, credentials.password, address,
                svc.clock(), replaces=current_user.auth_id,
            )
    except Throttled as throttled:
        raise APIError(
            429, f"too many failed logins: try again in {throttled.retry_after} seconds",
            headers={"Retry-After": str(throttled.retry_after)},
        ) from None
    if result is None:
        raise APIError(401, "wrong email or password")

    user, session_id = result
    login_user(AuthUser(session_id), remember=True)
    csrf.rotate()
    if is_form:
        return redirect(safe_next(data.get("next")), 303)
    return {"success": True, "user": {"id": user.id, "email": user.email}}, 200


@blueprint.post("/logout")
@document_request(LogoutRequest)
@document_response(LogoutResponse)
@document_response(None, 303, Redirect)
@document_errors(400, 413)
async def logout() -> Response | dict:
    """End this session everywhere. Forms are redirected to `/login`; JSON gets 200."""
    if current_user.auth_id is not None:
        await end_session(services().pool, current_user.auth_id)
    logout_user()
    csrf.rotate()
    if request.mimetype == "application/json":
        return {"success": True}
    return redirect("/login", 303)
