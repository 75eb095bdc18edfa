"""Team: invite links and the owners of a tenant; `/invite/<token>` is where an invite is taken.

An invite is single use and valid 7 days. Whoever opens it either accepts it with the session
they have, or creates an account there (email and password), and becomes an owner. No email
server is involved: the owner passes the link on however they like.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from quart import Blueprint, Response, redirect, render_template, request
from quart_auth import AuthUser, login_user
from quart_schema import document_request, document_response, hide, security_scheme

from app.accounts.invites import (
    LastOwner,
    create_invite,
    list_invites,
    list_owners,
    open_invite,
    remove_owner,
    take_invite,
)
from app.accounts.sessions import start_session
from app.accounts.tenants import get_tenant
from app.accounts.users import AccountError, create_user
from app.http import csrf
from app.http.auth import authenticate, authorize_owner
from app.http.bodies import JSONConfirm, Revoked, RevokedResponse, iso, json_body, now
from app.http.errors import APIError, document_errors, store_call
from app.http.headers import LOGIN_CSP
from app.http.urls import external_url
from app.services import services

blueprint = Blueprint("team", __name__)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass
class NewInvite:
    """Nothing to say: send `{}`."""


@dataclass
class InviteInfo:
    id: int
    created_at: str
    expires_at: str
    used_at: str | None


@dataclass
class CreatedInvite(InviteInfo):
    url: str  # single use; shown this once


@dataclass
class CreatedInviteResponse:
    success: bool
    data: CreatedInvite


@dataclass
class OwnerInfo:
    id: int
    email: str
    you: bool


@dataclass
class Team:
    owners: list[OwnerInfo]
    invites: list[InviteInfo]


@dataclass
class TeamResponse:
    success: bool
    data: Team


@blueprint.post("/api/analytics/<int:tenant_id>/invites")
@security_scheme([{"session": []}])
@document_request(NewInvite)
@document_response(CreatedInviteResponse, 201)
@document_errors(400, 401, 403, 404, 413, 415, 503)
async def post_invite(tenant_id: int) -> tuple[dict, int]:
    """Create an invite link: single use, valid 7 days; whoever takes it becomes an owner of
    this tenant. Owners only (send `{}` as application/json)."""
    principal = await authorize_owner(tenant_id)
    await json_body(NewInvite, "{}")
    async with store_call():
        invite, token = await create_invite(services().pool, tenant_id, principal.subject_id,
                                            now())
    url = external_url("team.invite_page", token=token)
    return {"success": True, "data": {
        "id": invite.id, "created_at": iso(invite.created_at),
        "expires_at": iso(invite.expires_at), "used_at": None, "url": url}}, 201


@blueprint.get("/api/analytics/<int:tenant_id>/team")
@security_scheme([{"session": []}])
@document_response(TeamResponse)
@document_errors(401, 403, 404, 503)
async def get_team(tenant_id: int) -> dict:
    """The tenant's owners (`you` marks the caller) and its invites. Owners only."""
    principal = await authorize_owner(tenant_id)
    async with store_call():
        owners = await list_owners(services().pool, tenant_id)
        invites = await list_invites(services().pool, tenant_id)
    return {"success": True, "data": {
        "owners": [{"id": o.id, "email": o.email, "you": o.id == principal.subject_id}
                   for o in owners],
        "invites": [{"id": i.id, "created_at": iso(i.created_at),
                     "expires_at": iso(i.expires_at), "used_at": iso(i.used_at)}
                    for i in invites],
    }}


@blueprint.delete("/api/analytics/<int:tenant_id>/owners/<int:user_id>")
@security_scheme([{"session": []}])
@document_request(JSONConfirm)
@document_response(RevokedResponse)
@document_errors(400, 401, 403, 404, 409, 503)
async def delete_owner(tenant_id: int, user_id: int) -> dict:
    """Remove an owner from this tenant (yourself too, unless you are the last one: 409)."""
    await authorize_owner(tenant_id)
    try:
        async with store_call(), services().pool.acquire() as conn:
            done = await remove_owner(conn, tenant_id, user_id)
    except LastOwner:
        raise APIError(409, "a tenant keeps at least one owner: invite another first") from None
    if not done:
        raise APIError(404, f"user {user_id} does not own tenant {tenant_id}")
    return {"success": True, "data": Revoked(user_id, True).__dict__}


# -- taking an invite -------------------------------------------------------------------


async def _page(token: str, *, error: str = "", status: int = 200) -> Response:
    async with store_call():
        invite = await open_invite(services().pool, token, now())
        principal = await authenticate()
        tenant = await get_tenant(services().pool, invite.tenant_id) if invite else None
    if invite is None or tenant is None:
        page = await render_template("invite.html", invite=None)
        status = 404
    else:
        page = await render_template(
            "invite.html", invite=invite, tenant=tenant, error=error,
            logged_in=principal is not None and principal.kind == "user",
            login_url="/login?" + urlencode({"next": request.path}),
        )
    response = Response(page, status=status, content_type="text/html")
    response.headers["Content-Security-Policy"] = LOGIN_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/invite/<token>")
@hide
async def invite_page(token: str) -> Response:
    return await _page(token)


@blueprint.post("/invite/<token>")
@hide
async def take(token: str) -> Response:
    """The invite page's form (CSRF-checked): accept with this session, or create an
    account with `email` and `password` and accept with it."""
    if request.mimetype not in FORM_TYPES:
        raise APIError(415, "send the invite page's form")
    form = await request.form
    principal = await authenticate()
    svc = services()
    moment = now()
    try:
        async with store_call(), svc.pool.acquire() as conn, conn.transaction():
            if principal is not None and principal.kind == "user":
                user_id, session_id = principal.subject_id, None
            else:
                user = await create_user(conn, form.get("email", ""),
                                         form.get("password", ""))
                user_id = user.id
                session_id = await start_session(conn, user_id, moment)
            tenant_id = await take_invite(conn, token, user_id, moment)
            if tenant_id is None:
                # Rolls back the new account too: nothing is left of a failed attempt.
                raise InviteGone()
    except AccountError as problem:
        return await _page(token, error=str(problem), status=400)
    except InviteGone:
        return await _page(token)
    if session_id is not None:
        login_user(AuthUser(session_id), remember=True)
        csrf.rotate()
    return redirect(f"/dashboard/{tenant_id}", 303)


class InviteGone(Exception):
    """The invite was used, revoked or expired meanwhile."""
