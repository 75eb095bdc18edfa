"""Connections to Redis and Postgres, made the same way by the web app, scheduler and CLI."""

from __future__ import annotations

import asyncpg
import hiredis
from redis.asyncio import BlockingConnectionPool, Connection, Redis
from redis.asyncio.cluster import RedisCluster
from redis.maint_notifications import MaintNotificationsConfig
from redis.asyncio.retry import Retry  # the sync Retry never retries an async call
from redis.backoff import NoBackoff

# The web process must answer 503 within a second when Redis is gone, so nothing waits long
# and nothing is retried: retrying a script whose reply was lost could apply it twice. A dead
# or unreachable Redis shows at connect time (0.4 s); a reply may take longer (0.8 s, inside
# /track's 0.9 s deadline), since a script that timed out may still have run: a 503 then
# cannot say "not counted", so it should be rare, not the price of a busy machine.
WEB_REDIS_TIMEOUT = 0.4
WEB_REDIS_READ_TIMEOUT = 0.8


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


def make_redis(url: str, timeout: float = WEB_REDIS_TIMEOUT, read_timeout: float | None = None,
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
