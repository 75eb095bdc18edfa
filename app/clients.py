"""Connections to Redis and Postgres, made the same way by the web app, scheduler and CLI."""

from __future__ import annotations

import asyncpg
from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# The web process must answer 503 within a second when Redis is gone, so nothing waits long
# and nothing is retried: retrying a script whose reply was lost could apply it twice.
WEB_REDIS_TIMEOUT = 0.4


REDIS_CONNECTIONS = 64


def make_redis(url: str, timeout: float = WEB_REDIS_TIMEOUT,
               max_connections: int = REDIS_CONNECTIONS) -> Redis:
    # A blocking pool: a burst beyond max_connections waits (up to `timeout`) for a
    # connection instead of failing at once.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


async def make_pool(dsn: str, max_size: int = 10) -> asyncpg.Pool:
    # min_size=0: the process starts even while Postgres is down, and connects when it returns.
    return await asyncpg.create_pool(dsn, min_size=0, max_size=max_size, command_timeout=30)
