"""Login sessions of tenant owners: a random id in the cookie, only its SHA-256 in Postgres,
so a logout ends a session in every process and a copy of the table opens none."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from dataclasses import dataclass

import asyncpg

from app.accounts.hashed import digest
from app.accounts.throttle import LoginThrottle
from app.accounts.users import User, check_password_of, find_account

SESSION_LIFETIME = dt.timedelta(days=14)
# The cookie that carries a session (quart-auth signs it); the one name of it everywhere.
SESSION_COOKIE = "QUART_AUTH"


@dataclass(frozen=True)
class SessionUser:
    user_id: int
    tenant_ids: frozenset[int]



async def start_session(conn: asyncpg.Connection | asyncpg.Pool, user_id: int,
                        now: dt.datetime, replaces: str | None = None) -> str:
    """A new session id for the user; the session the browser held before, if any, ends.

    A fresh id at every login is what defeats session fixation.
    """
    session_id = secrets.token_urlsafe(32)
    await conn.execute(
        """WITH gone AS (
               DELETE FROM sessions
               WHERE id_hash = $4 OR (user_id = $2 AND expires_at <= $3)
           )
           INSERT INTO sessions (id_hash, user_id, created_at, expires_at)
           VALUES ($1, $2, $3, $3::timestamptz + $5::interval)""",
        digest(session_id), user_id, now,
        digest(replaces) if replaces else b"", SESSION_LIFETIME,
    )
    return session_id


async def end_session(conn: asyncpg.Connection | asyncpg.Pool, session_id: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE id_hash = $1", digest(session_id))


async def session_user(conn: asyncpg.Connection | asyncpg.Pool, session_id: str,
                       now: dt.datetime) -> SessionUser | None:
    """Who holds this live session and the tenants they own now (read on every request, so a
    logout, an expiry or a membership change applies at once)."""
    row = await conn.fetchrow(
        """SELECT s.user_id,
                  array_remove(array_agg(m.tenant_id), NULL) AS tenant_ids
           FROM sessions s
           LEFT JOIN memberships m ON m.user_id = s.user_id
           WHERE s.id_hash = $1 AND s.expires_at > $2
           GROUP BY s.user_id""",
        digest(session_id), now,
    )
    if row is None:
        return None
    return SessionUser(row["user_id"], frozenset(row["tenant_ids"]))


async def log_in(conn: asyncpg.Connection | asyncpg.Pool, throttle: LoginThrottle, email: str,
                 password: str, address: str, now: float,
                 replaces: str | None = None) -> tuple[User, str] | None:
    """The user and a new session id, or None for wrong credentials.

    Raises Throttled after too many recent failures from the client, or on an account this
    client already failed on while it is being guessed at; then the password is not even
    checked, so a refusal gives nothing away. Any other client waits the throttle's delay
    before its password is checked, right or wrong alike.
    """
    account = await find_account(conn, email)
    attempt = await throttle.begin(account.name, address, now)
    if attempt.delay:
        await asyncio.sleep(attempt.delay)
    user = await check_password_of(conn, account, password)
    if user is None:
        return None
    await throttle.succeeded(attempt)
    session_id = await start_session(
        conn, user.id, dt.datetime.fromtimestamp(now, dt.UTC), replaces
    )
    return user, session_id
