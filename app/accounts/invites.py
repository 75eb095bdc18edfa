"""Team invites: a single-use link, valid 7 days, that makes its taker an owner of a tenant.

As with share links, only the token's SHA-256 is stored. Taking an invite marks it used in
the same statement that checks it, so two people racing on one link make one owner.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import asyncpg

from app.accounts.hashed import digest

INVITE_LIFETIME = dt.timedelta(days=7)
COLUMNS = "id, tenant_id, created_at, expires_at, used_at, revoked_at"


@dataclass(frozen=True)
class Invite:
    id: int
    tenant_id: int
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class Owner:
    id: int
    email: str



async def create_invite(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int,
                        created_by: int | None, now: dt.datetime) -> tuple[Invite, str]:
    token = secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        f"""INSERT INTO invites (tenant_id, token_hash, created_by, created_at, expires_at)
            VALUES ($1, $2, $3, $4, $4::timestamptz + $5::interval) RETURNING {COLUMNS}""",
        tenant_id, digest(token), created_by, now, INVITE_LIFETIME,
    )
    return Invite(**row), token


async def list_invites(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int) -> list[Invite]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM invites WHERE tenant_id = $1 ORDER BY id", tenant_id)
    return [Invite(**row) for row in rows]


async def open_invite(conn: asyncpg.Connection | asyncpg.Pool, token: str,
                      now: dt.datetime) -> Invite | None:
    """The invite this token is, while it can still be taken; None otherwise."""
    if "\x00" in token:
        return None
    row = await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM invites
            WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL
              AND expires_at > $2""",
        digest(token), now,
    )
    return Invite(**row) if row else None


async def take_invite(conn: asyncpg.Connection, token: str, user_id: int,
                      now: dt.datetime) -> int | None:
    """Uses the invite for `user_id` and makes them an owner; the tenant id, or None when
    the invite is unknown, used, revoked or expired. Call inside a transaction."""
    tenant_id = await conn.fetchval(
        """UPDATE invites SET used_at = $3, used_by = $2
           WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3
           RETURNING tenant_id""",
        digest(token), user_id, now,
    )
    if tenant_id is not None:
        await conn.execute(
            """INSERT INTO memberships (user_id, tenant_id) VALUES ($1, $2)
               ON CONFLICT DO NOTHING""", user_id, tenant_id)
    return tenant_id


async def list_owners(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int) -> list[Owner]:
    rows = await conn.fetch(
        """SELECT u.id, u.email FROM memberships m JOIN users u ON u.id = m.user_id
           WHERE m.tenant_id = $1 ORDER BY u.id""", tenant_id)
    return [Owner(**row) for row in rows]


class LastOwner(Exception):
    """Removing this owner would leave the tenant with none."""


async def remove_owner(conn: asyncpg.Connection, tenant_id: int, user_id: int) -> bool:
    """Ends `user_id`'s ownership of the tenant; LastOwner when they are its only owner.
    The owners' rows are locked first, so two owners removing each other leave one."""
    async with conn.transaction():
        owners = await conn.fetch(
            "SELECT user_id FROM memberships WHERE tenant_id = $1 FOR UPDATE", tenant_id)
        ids = {row["user_id"] for row in owners}
        if user_id not in ids:
            return False
        if ids == {user_id}:
            raise LastOwner()
        await conn.execute(
            "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id)
        # Their sessions stay (they may own other tenants); each request reads memberships.
        return True
