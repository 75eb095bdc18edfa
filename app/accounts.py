"""Tenant owners: users with argon2id password hashes, the tenants they own, and login sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.throttle import LoginThrottle

MIN_PASSWORD_CHARS = 8
# Long enough for any passphrase, short enough that hashing cannot be used to burn CPU.
MAX_PASSWORD_CHARS = 1024
MAX_EMAIL_CHARS = 254
SESSION_LIFETIME = dt.timedelta(days=14)

# argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile.
_hasher = PasswordHasher()
# An unknown email is checked against this, so it costs what a wrong password costs.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(24))


class AccountError(ValueError):
    """Input an operator or owner can correct; the message says how."""


@dataclass(frozen=True)
class User:
    id: int
    email: str


@dataclass(frozen=True)
class SessionUser:
    user_id: int
    tenant_ids: frozenset[int]


def check_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email):
        raise AccountError(f"{email!r} is not an email address")
    if len(email) > MAX_EMAIL_CHARS:
        raise AccountError(f"an email address has at most {MAX_EMAIL_CHARS} characters")
    return email


def check_password(password: str) -> str:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise AccountError(
            f"a password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


# -- users and memberships ---------------------------------------------------------------


async def create_user(conn: asyncpg.Connection | asyncpg.Pool, email: str, password: str) -> User:
    """Raises AccountError for a malformed email or password, or an email already taken."""
    email = check_email(email)
    password_hash = await asyncio.to_thread(hash_password, password)
    try:
        row = await conn.fetchrow(
            "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id, email",
            email, password_hash,
        )
    except asyncpg.UniqueViolationError:
        raise AccountError(f"a user with the email {email!r} already exists") from None
    return User(**row)


async def set_password(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, password: str) -> None:
    password_hash = await asyncio.to_thread(hash_password, password)
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def get_user_by_email(conn: asyncpg.Connection | asyncpg.Pool, email: str) -> User | None:
    row = await conn.fetchrow(
        "SELECT id, email FROM users WHERE lower(email) = lower($1)", email.strip()
    )
    return User(**row) if row else None


async def add_membership(conn: asyncpg.Connection | asyncpg.Pool, user_id: int,
                         tenant_id: int) -> bool:
    """True when the user did not own the tenant yet."""
    status = await conn.execute(
        """INSERT INTO memberships (user_id, tenant_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING""",
        user_id, tenant_id,
    )
    return status.endswith(" 1")


async def user_tenants(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> list[int]:
    rows = await conn.fetch(
        "SELECT tenant_id FROM memberships WHERE user_id = $1 ORDER BY tenant_id", user_id
    )
    return [row["tenant_id"] for row in rows]


async def check_credentials(conn: asyncpg.Connection | asyncpg.Pool, email: str,
                            password: str) -> User | None:
    """The user these credentials belong to, or None.

    An unknown email and a wrong password take the same path through argon2, so neither the
    answer nor its timing tells whether an account exists.
    """
    email = email.strip()[:MAX_EMAIL_CHARS + 1]
    # Postgres text cannot hold U+0000, so no account has such an email (and asking would fail).
    row = None if "\x00" in email else await conn.fetchrow(
        "SELECT id, email, password_hash FROM users WHERE lower(email) = lower($1)", email,
    )
    password_hash = row["password_hash"] if row else _DUMMY_HASH
    # argon2 takes tens of milliseconds of CPU: off the event loop, other requests go on.
    matches = await asyncio.to_thread(_verify, password_hash, password[:MAX_PASSWORD_CHARS + 1])
    if row is None or not matches:
        return None
    if _hasher.check_needs_rehash(password_hash):
        await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            row["id"], await asyncio.to_thread(_hasher.hash, password),
        )
    return User(row["id"], row["email"])


# -- sessions ----------------------------------------------------------------------------


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
        _digest(session_id), user_id, now,
        _digest(replaces) if replaces else b"", SESSION_LIFETIME,
    )
    return session_id


async def end_session(conn: asyncpg.Connection | asyncpg.Pool, session_id: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE id_hash = $1", _digest(session_id))


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
        _digest(session_id), now,
    )
    if row is None:
        return None
    return SessionUser(row["user_id"], frozenset(row["tenant_ids"]))


# -- logging in --------------------------------------------------------------------------


async def log_in(conn: asyncpg.Connection | asyncpg.Pool, throttle: LoginThrottle, email: str,
                 password: str, address: str, now: float,
                 replaces: str | None = None) -> tuple[User, str] | None:
    """The user and a new session id, or None for wrong credentials.

    Raises Throttled after too many recent failures for the email or the client; then the
    password is not even checked, so a locked account gives nothing away.
    """
    attempt = await throttle.begin(email, address, now)
    user = await check_credentials(conn, email, password)
    if user is None:
        return None
    await throttle.succeeded(attempt)
    session_id = await start_session(
        conn, user.id, dt.datetime.fromtimestamp(now, dt.UTC), replaces
    )
    return user, session_id
