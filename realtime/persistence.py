"""Whether Redis keeps what it holds across a restart: its append-only file, on every master.

Redis holds every accepted event until the scheduler stores it in Postgres, so a Redis
without its append-only file loses them all when it restarts (deploy/redis.conf). This reads
`INFO persistence`, which managed services answer too (many refuse `CONFIG GET`); on a
Redis Cluster it asks each master, since each holds its own slots' events.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

OFF = ("Redis persistence is off{where} (appendonly no): a Redis restart loses every "
       "accepted event not yet stored in Postgres; set appendonly yes and appendfsync "
       "everysec (deploy/redis.conf)")
FAILING = ("Redis cannot write its append-only file{where} (aof_last_write_status:{status}): "
           "check its disk")
UNKNOWN = "Redis persistence could not be checked ({error})"


async def persistence_warnings(redis: Redis | RedisCluster) -> list[str]:
    """What an operator should hear about Redis persistence: nothing when every master
    writes its append-only file. Raises what the client raises when Redis does not answer."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()
        # One master at a time: redis-py's cluster client, set up lazily, fails concurrent
        # first commands.
        reports = [(f" on master {node.name}", await redis.info("persistence", target_nodes=node))
                   for node in redis.get_primaries()]
    else:
        reports = [("", await redis.info("persistence"))]
    warnings = []
    for where, info in reports:
        if "aof_enabled" not in info:  # a proxy or service that hides the field
            warnings.append(UNKNOWN.format(error=f"INFO persistence{where} has no aof_enabled"))
        elif not int(info["aof_enabled"]):
            warnings.append(OFF.format(where=where))
        elif info.get("aof_last_write_status", "ok") != "ok":
            warnings.append(FAILING.format(where=where, status=info["aof_last_write_status"]))
    return warnings
