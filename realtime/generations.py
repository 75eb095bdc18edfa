"""Generations: one value in Redis per tenant and kind of data that changes whenever what a
process may have cached of that data stops being true, so every process checks its caches
with the read's one round trip (`current`) instead of asking Postgres again.

    rollups      set by each flush that wrote the tenant's daily rollups, each drain
                 that stored its raw events and each count of them into its breakdown
                 rollups, after the transaction committed (rollups/flush.py,
                 rollups/drain.py, rollups/breakdown_queue.py)
    credentials  set before and after any of the tenant's tokens or share links is revoked
                 (app/accounts/revocation.py)

A reader reads the generation before it reads Postgres and files what it read under that
generation; a writer changes Postgres and then the generation. So an entry filed under the
current generation is never older than the last change. Values are random, never counters:
a Redis restarted empty starts every generation afresh, and a counter could come back to a
value some process still holds an entry under. A missing generation (never set, expired, or
lost in a restart) caches nothing; an authorized reader then starts it with SET NX
(`start_missing`: never before authorization, or anyone could fill Redis with generations of
made-up tenants), and the next read fills the caches under it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from realtime import keys as k
from realtime.scripts import Scripts

# Generations set per script call: bounds how long one call holds Redis while /track waits
# (5,000 held it 15-36 ms on a loaded machine, 1,000 for 4-8 ms).
RENEW_CHUNK = 250


@dataclass(frozen=True)
class Generations:
    """None where the generation is missing."""

    rollups: bytes | None
    credentials: bytes | None


def _fresh() -> bytes:
    return secrets.token_bytes(12)


async def current(redis: Redis | RedisCluster, keys: k.Keys, tenant_id: int) -> Generations:
    """The tenant's generations, in one round trip (both keys share the tenant's hash tag)."""
    return Generations(*await redis.mget(
        keys.rollups_generation(tenant_id), keys.credentials_generation(tenant_id)))


async def start_missing(redis: Redis | RedisCluster, keys: k.Keys, tenant_id: int,
                        found: Generations) -> None:
    """Starts the generations `found` lacked; another process starting one at the same
    moment is harmless (NX: the first value stays)."""
    for name, value in ((keys.rollups_generation(tenant_id), found.rollups),
                        (keys.credentials_generation(tenant_id), found.credentials)):
        if value is None:
            await redis.set(name, _fresh(), nx=True, ex=k.GENERATION_TTL_SECONDS)


async def renew_rollups(scripts: Scripts, keys: k.Keys, tenant_ids: Iterable[int]) -> None:
    """New rollup generations for these tenants: call after their rollups changed. A drain
    or a flush renews thousands at once, in script calls of up to RENEW_CHUNK tenants of one
    shard (a tenant's keys carry its shard's hash tag): a pipelined SET a tenant cost the
    caller's Python about eight times as much (realtime/scripts/renew_generations.lua)."""
    by_shard: dict[int, list[str]] = {}
    for tenant_id in set(tenant_ids):
        by_shard.setdefault(keys.shard_of(tenant_id), []).append(
            keys.rollups_generation(tenant_id))
    for names in by_shard.values():
        for start in range(0, len(names), RENEW_CHUNK):
            chunk = names[start:start + RENEW_CHUNK]
            await scripts.renew_generations(
                keys=chunk, args=[k.GENERATION_TTL_SECONDS, *(_fresh() for _ in chunk)])


async def renew_credentials(redis: Redis | RedisCluster, keys: k.Keys, tenant_id: int) -> None:
    """A new credentials generation for the tenant: every process checks the tenant's
    credentials against Postgres again at its next request."""
    await redis.set(keys.credentials_generation(tenant_id), _fresh(),
                    ex=k.GENERATION_TTL_SECONDS)
