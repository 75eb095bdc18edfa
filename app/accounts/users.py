"""Tenant owners: users with argon2id password hashes and the tenants they own."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_CHARS = 8
# Long enough for any passphrase, short enough that hashing cannot be used to burn CPU.
MAX_PASSWORD_CHARS = 1024
MAX_EMAIL_CHARS = 254

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


async def set_password(conn: asyncpg.Connection | asyncpg.Pool, user_id: int,
                       password: str) -> None:
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


@dataclass(frozen=True)
class Account:
    """What a login names: `name` is the email as the look-up compares it (Postgres's
    `lower()`), the one key its failures are counted under; `row` the user, if any."""

    name: str
    row: asyncpg.Record | None


async def find_account(conn: asyncpg.Connection | asyncpg.Pool, email: str) -> Account:
    """The account an email names, whether or not a user has it. The name comes from the same
    `lower()` as the look-up, so two spellings Postgres finds the same user by (`alİce` and
    `alice`) are one name to the login throttle too."""
    email = email.strip()[:MAX_EMAIL_CHARS + 1]
    # Postgres text cannot hold U+0000, so no account has such an email (and asking would fail).
    if "\x00" in email:
        return Account(email.lower(), None)
    row = await conn.fetchrow(
        """SELECT lower($1::text) AS name, u.id, u.email, u.password_hash
           FROM (SELECT) AS asked LEFT JOIN users u ON lower(u.email) = lower($1::text)""",
        email,
    )
    return Account(row["name"], row if row["id"] is not None else None)


async def check_password_of(conn: asyncpg.Connection | asyncpg.Pool, account: Account,
                            password: str) -> User | None:
    """The account's user if the password is theirs, or None.

    An unknown email and a wrong password take the same path through argon2, so neither the
    answer nor its timing tells whether an account exists.
    """
    row = account.row
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


async def check_credentials(conn: asyncpg.Connection | asyncpg.Pool, email: str,
                            password: str) -> User | None:
    """The user these credentials belong to, or None."""
    return await check_password_of(conn, await find_account(conn, email), password)
