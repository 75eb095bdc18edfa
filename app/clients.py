"""Connections to Redis and Postgres, made the same way by the web app, scheduler and CLI."""

from __future__ import annotations

import asyncpg
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# The web process must answer 503 within a second when Redis is gone, so nothing waits long
# and nothing is retried: retrying a script whose reply was lost could apply it twice.
WEB_REDIS_TIMEOUT = 0.4


def make_redis(url: str, timeout: float = WEB_REDIS_TIMEOUT) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


async def make_pool(dsn: str, max_size: int = 10) -> asyncpg.Pool:
    # min_size=0: the process starts even while Postgres is down, and connects when it returns.
    return await asyncpg.create_pool(dsn, min_size=0, max_size=max_size, command_timeout=30)
