"""Revoking a token or share link in every process at once.

Postgres records the revocation; the tenant's credentials generation (realtime/generations.py)
is renewed before and after it, so no process serves the credential from its cache at its
next request. Before: with Redis unreachable nothing is revoked and the caller hears so, since
the caches could not be told. After: drops what a read filed between the first renewal and
the revocation, while Postgres still called the credential live.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from app.accounts.shares import revoke_share
from app.accounts.tokens import revoke_token, token_tenant
from realtime import keys as k
from realtime.generations import renew_credentials


@contextlib.asynccontextmanager
async def _revoking(redis: Redis | RedisCluster, keys: k.Keys, tenant_id: int,
                    ) -> AsyncIterator[None]:
    await renew_credentials(redis, keys, tenant_id)
    yield
    await renew_credentials(redis, keys, tenant_id)


async def revoke_token_everywhere(conn: asyncpg.Connection | asyncpg.Pool,
                                  redis: Redis | RedisCluster, keys: k.Keys, token_id: int,
                                  tenant_id: int | None = None) -> bool:
    """`revoke_token`, told to every process's cache; with `tenant_id`, only a token of
    that tenant."""
    owner = tenant_id if tenant_id is not None else await token_tenant(conn, token_id)
    if owner is None:  # a platform token, which no cache holds, or no token at all
        return await revoke_token(conn, token_id, tenant_id)
    async with _revoking(redis, keys, owner):
        return await revoke_token(conn, token_id, tenant_id)


async def revoke_share_everywhere(conn: asyncpg.Connection | asyncpg.Pool,
                                  redis: Redis | RedisCluster, keys: k.Keys, tenant_id: int,
                                  share_id: int) -> bool:
    """`revoke_share`, told to every process's cache."""
    async with _revoking(redis, keys, tenant_id):
        return await revoke_share(conn, tenant_id, share_id)
