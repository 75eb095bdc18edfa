"""API tokens for programs: random, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import asyncpg

TOKEN_PREFIX = "lat_"


@dataclass(frozen=True)
class Token:
    id: int
    tenant_id: int
    label: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_token(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int,
                       label: str = "") -> tuple[Token, str]:
    """Returns the record and the plaintext token, which is not kept anywhere."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        """INSERT INTO api_tokens (tenant_id, token_hash, label) VALUES ($1, $2, $3)
           RETURNING id, tenant_id, label""",
        tenant_id, _digest(plaintext), label,
    )
    return Token(**row), plaintext


async def revoke_token(conn: asyncpg.Connection | asyncpg.Pool, token_id: int) -> bool:
    status = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", token_id
    )
    return status.endswith(" 1")


async def verify_token(conn: asyncpg.Connection | asyncpg.Pool, plaintext: str) -> Token | None:
    """The live token this plaintext is, or None. Read on every request: no cache to outlive
    a revocation."""
    row = await conn.fetchrow(
        """SELECT id, tenant_id, label FROM api_tokens
           WHERE token_hash = $1 AND revoked_at IS NULL""",
        _digest(plaintext),
    )
    return Token(**row) if row else None
