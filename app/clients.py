"""Connections to Redis and Postgres, and the one bundle of them (`Clients`) that the web app,
the scheduler, the command line and the demo each open and close; `STORE_ERRORS` is what a
failing store raises through them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
import hiredis
from redis.asyncio import BlockingConnectionPool, Connection, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry  # the sync Retry never retries an async call
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.maint_notifications import MaintNotificationsConfig

from app.settings import Settings
from realtime.keys import Keys
from realtime.scripts import Scripts

log = logging.getLogger(__name__)

# What a store that is down, slow or refusing raises through these clients. Every caller
# that turns a store failure into an answer (a 503, a CLI message, a log line) catches these.
STORE_ERRORS = (OSError, TimeoutError, RedisError, asyncpg.PostgresError)

REDIS_CONNECTIONS = 64
CLUSTER_SCHEME = "redis+cluster://"
CLUSTER_CONNECTIONS_PER_NODE = 512


# With maintenance notifications on ("auto", redis-py's default) the pool skips its check
# that a pooled connection is still alive, so the first command after a Redis restart
# fails. We use neither RESP3 nor a managed service that sends them.
NO_MAINT_NOTIFICATIONS = MaintNotificationsConfig(enabled=False)


class PackedConnection(Connection):
    """Packs commands with hiredis, as redis-py's sync client does; its asyncio client packs
    in Python, a fifth of the in-process cost of one `/track` (19 arguments an event)."""

    def pack_command(self, *args) -> list[bytes]:
        name = args[0]
        if (" " in name if isinstance(name, str) else b" " in name):
            return super().pack_command(*args)  # 'CONFIG GET' and the like
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a memoryview, or a value redis-py refuses with DataError
            return super().pack_command(*args)


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def make_redis(url: str, timeout: float, read_timeout: float | None = None,
               max_connections: int = REDIS_CONNECTIONS, retries: int = 0) -> Redis | RedisCluster:
    """A client for REDIS_URL; `redis+cluster://host:port` names a Redis Cluster node.

    `timeout` bounds connecting and waiting for a pooled connection, `read_timeout` (default
    `timeout`) a reply. `retries` only for clients whose every command is safe to repeat.
    """
    read_timeout = timeout if read_timeout is None else read_timeout
    if is_cluster(url):
        return RedisCluster.from_url(
            "redis://" + url.removeprefix(CLUSTER_SCHEME),
            socket_timeout=read_timeout,
            socket_connect_timeout=timeout,
            # The cluster client's pools do not wait for a free connection: size them for
            # the concurrency a process may reach.
            max_connections=max(max_connections, CLUSTER_CONNECTIONS_PER_NODE),
            retry=Retry(NoBackoff(), retries),
            maint_notifications_config=NO_MAINT_NOTIFICATIONS,
        )
    # A blocking pool: a burst beyond max_connections waits (up to `timeout`) for a
    # connection instead of failing at once.
    pool = BlockingConnectionPool.from_url(
        url,
        connection_class=PackedConnection,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=read_timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries),
        health_check_interval=30,
        maint_notifications_config=NO_MAINT_NOTIFICATIONS,
    )
    return Redis.from_pool(pool)


async def warmed(redis: Redis | RedisCluster, timeout: float) -> Redis | RedisCluster:
    """The client, and a cluster client that has learnt the cluster's slots: in redis-py
    8.1, commands that run at once on a cold cluster client close each other's connections
    while it discovers the cluster ("Connection closed by server", a writer gone None), so a
    process's first burst of events would meet 503s and 500s. Best-effort: a cluster that is
    down now is discovered at first use, as before."""
    if isinstance(redis, RedisCluster):
        try:
            async with asyncio.timeout(timeout):
                await redis.initialize()
        except (*STORE_ERRORS, RedisClusterException) as error:
            log.warning("Redis Cluster not reached at start: %s", type(error).__name__)
    return redis


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's session reset (an open transaction is still rolled back)."""


async def make_pool(dsn: str, max_size: int = 10, reset_sessions: bool = True) -> asyncpg.Pool:
    """A Postgres pool; min_size=0, so a process starts while Postgres is down.

    `reset_sessions=False` saves the round trip asyncpg spends resetting a connection at
    every release; only for pools whose users leave no session state (no advisory locks,
    LISTEN or SET), as the web process's queries do.
    """
    return await asyncpg.create_pool(dsn, min_size=0, max_size=max_size, command_timeout=30,
                                     reset=None if reset_sessions else _keep_session)


@dataclass(kw_only=True)
class Clients:
    """A process's connections, and what it needs to address Redis: keys and scripts."""

    settings: Settings
    keys: Keys
    redis: Redis | RedisCluster
    pool: asyncpg.Pool
    scripts: Scripts
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    async def open(cls, settings: Settings, *, web: bool = False) -> Clients:
        """The web's clients answer or fail within a second; the scheduler's and the CLI's
        (`web=False`) may wait."""
        if web:
            redis = await warmed(
                make_redis(settings.redis_url, timeout=settings.redis_connect_timeout,
                           read_timeout=settings.redis_reply_timeout),
                settings.redis_connect_timeout)
            pool = await make_pool(settings.database_url, reset_sessions=False)
        else:
            redis = await warmed(make_redis(settings.redis_url,
                                            timeout=settings.jobs_redis_timeout),
                                 settings.jobs_redis_timeout)
            pool = await make_pool(settings.database_url, max_size=4)
        return cls(settings=settings, keys=Keys(settings.key_prefix), redis=redis, pool=pool,
                   scripts=Scripts.load(redis))

    async def close(self) -> None:
        await self.redis.aclose()
        await self.pool.close()


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Clients]:
    """The scheduler's, the CLI's and the demo's clients for as long as the block runs."""
    clients = await Clients.open(settings)
    try:
        yield clients
    finally:
        await clients.close()
