"""Share links: a read-only view of one tenant's numbers at an unguessable URL.

The URL carries a random token; Postgres keeps only its SHA-256, so a copy of the table opens
no dashboard. A link is checked on every request and every socket recheck: revoking or
expiring it ends it everywhere at once.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import asyncpg

from app.accounts.hashed import digest

# Share tokens look unlike API tokens (`lat_`), so a bearer header can carry either.
SHARE_PREFIX = "las_"
COLUMNS = "id, tenant_id, created_at, expires_at, revoked_at"


@dataclass(frozen=True)
class Share:
    id: int
    tenant_id: int
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None



async def create_share(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int,
                       expires_at: dt.datetime | None = None) -> tuple[Share, str]:
    """The record and the token for the URL (not kept anywhere)."""
    token = SHARE_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        f"""INSERT INTO share_links (tenant_id, token_hash, expires_at) VALUES ($1, $2, $3)
            RETURNING {COLUMNS}""",
        tenant_id, digest(token), expires_at,
    )
    return Share(**row), token


async def list_shares(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int) -> list[Share]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM share_links WHERE tenant_id = $1 ORDER BY id", tenant_id)
    return [Share(**row) for row in rows]


async def revoke_share(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int,
                       share_id: int) -> bool:
    status = await conn.execute(
        """UPDATE share_links SET revoked_at = now()
           WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL""",
        share_id, tenant_id,
    )
    return status.endswith(" 1")


async def verify_share(conn: asyncpg.Connection | asyncpg.Pool, token: str,
                       now: dt.datetime) -> Share | None:
    """The live share this token opens, or None (unknown, revoked or expired)."""
    if not token.startswith(SHARE_PREFIX) or "\x00" in token:
        return None
    row = await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM share_links
            WHERE token_hash = $1 AND revoked_at IS NULL
              AND (expires_at IS NULL OR expires_at > $2)""",
        digest(token), now,
    )
    return Share(**row) if row else None
