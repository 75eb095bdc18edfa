"""API tokens for programs: random, shown once, stored only as a SHA-256 hash.

A tenant token (`kind` "tenant") reads one tenant's numbers; a platform token ("platform",
no tenant) provisions tenants, users and tenant tokens and reads nobody's numbers.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import asyncpg

from app.accounts.hashed import digest
from app.accounts.users import AccountError

TOKEN_PREFIX = "lat_"
# last_used_at is kept to about a minute: exact enough for "is this token still in use?",
# without a write on every request.
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)
TENANT = "tenant"
PLATFORM = "platform"
MAX_LABEL_CHARS = 100
# A token meant to last longer than this had better not expire at all (the default).
MAX_EXPIRY_DAYS = 3650


@dataclass(frozen=True)
class Token:
    id: int
    tenant_id: int | None
    label: str
    created_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    kind: str = TENANT


COLUMNS = "id, tenant_id, label, created_at, last_used_at, expires_at, revoked_at, kind"


def expiry(now: dt.datetime, days: int | None) -> dt.datetime | None:
    """When a token that lasts `days` stops working; AccountError for a count that is not a
    positive whole number of days (a token expired at birth is a typo, not a wish)."""
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_EXPIRY_DAYS:
        raise AccountError(f"a token expires 1 to {MAX_EXPIRY_DAYS} days from now, got {days}")
    return now + dt.timedelta(days=days)



async def create_token(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int | None,
                       label: str = "", expires_at: dt.datetime | None = None,
                       ) -> tuple[Token, str]:
    """Returns the record and the plaintext token, which is not kept anywhere. Without a
    tenant the token is a platform token."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        f"""INSERT INTO api_tokens (tenant_id, token_hash, label, expires_at, kind)
            VALUES ($1, $2, $3, $4, $5)
            RETURNING {COLUMNS}""",
        tenant_id, digest(plaintext), label, expires_at,
        TENANT if tenant_id is not None else PLATFORM,
    )
    return Token(**row), plaintext


async def revoke_token(conn: asyncpg.Connection | asyncpg.Pool, token_id: int,
                       tenant_id: int | None = None) -> bool:
    """Revokes the token at once; with `tenant_id`, only a token of that tenant (an owner
    revoking from the dashboard cannot reach another tenant's tokens by id)."""
    status = await conn.execute(
        """UPDATE api_tokens SET revoked_at = now()
           WHERE id = $1 AND revoked_at IS NULL AND ($2::bigint IS NULL OR tenant_id = $2)""",
        token_id, tenant_id,
    )
    return status.endswith(" 1")


async def token_tenant(conn: asyncpg.Connection | asyncpg.Pool, token_id: int) -> int | None:
    """The tenant of a tenant token; None for a platform token or no token."""
    return await conn.fetchval("SELECT tenant_id FROM api_tokens WHERE id = $1", token_id)


async def list_tokens(conn: asyncpg.Connection | asyncpg.Pool,
                      tenant_id: int | None) -> list[Token]:
    """A tenant's tokens, or with None the platform tokens."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM api_tokens
            WHERE tenant_id = $1 OR ($1::bigint IS NULL AND kind = 'platform') ORDER BY id""",
        tenant_id,
    )
    return [Token(**row) for row in rows]


async def verify_token(conn: asyncpg.Connection | asyncpg.Pool, plaintext: str,
                       now: dt.datetime | None = None) -> Token | None:
    """The live token this plaintext is, or None. A process may keep the answer only under the
    tenant's credentials generation (app/http/auth.py), which every revocation renews
    (app/accounts/revocation.py): no cache outlives a revocation."""
    now = now or dt.datetime.now(dt.UTC)
    row = await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM api_tokens
            WHERE token_hash = $1 AND revoked_at IS NULL
              AND (expires_at IS NULL OR expires_at > $2)""",
        digest(plaintext), now,
    )
    if row is None:
        return None
    token = Token(**row)
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # The condition is repeated in SQL so that processes racing here write once.
        await conn.execute(
            """UPDATE api_tokens SET last_used_at = $2
               WHERE id = $1
                 AND (last_used_at IS NULL OR last_used_at <= $2::timestamptz - $3::interval)""",
            token.id, now, LAST_USED_RESOLUTION,
        )
    return token
