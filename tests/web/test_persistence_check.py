"""`/readyz` and the scheduler say when Redis would lose accepted events on a restart.

Each test runs a redis-server of its own from deploy/redis.conf (the production settings),
with its append-only file on or off, so what the check reads is known.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import subprocess

import pytest
from redis.asyncio import Redis

from app.clients import make_redis
from realtime.persistence import persistence_warnings
from tests.support.apps import serving_app
from tests.support.cluster import LocalCluster
from tests.support.servers import REDIS_CONF, RedisServer, start_process

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture
def aof_on():
    server = RedisServer(config=(REDIS_CONF,)).start()
    yield server
    server.close()


@pytest.fixture
def aof_off():
    server = RedisServer(config=(REDIS_CONF,), appendonly="no").start()
    yield server
    server.close()


async def readyz(app) -> tuple[int, dict]:
    response = await app.test_client().get("/readyz")
    return response.status_code, await response.get_json()


async def test_readyz_in_production_warns_when_redis_persistence_is_off(
        settings, database, aof_off, caplog):
    """A 200 (a failing probe would take the process out of the load balancer) whose body
    says what is wrong and what to set; logged once, not at every probe."""
    caplog.set_level(logging.WARNING, logger="analytics.health")
    async with serving_app(settings, env="production", redis_url=aof_off.url) as app:
        for _ in range(3):
            status, body = await readyz(app)
            assert status == 200 and body["success"] is True
            [warning] = body["warnings"]
            assert "Redis persistence is off" in warning and "appendonly yes" in warning
        logged = [r.getMessage() for r in caplog.records if r.name == "analytics.health"]
        assert logged == [f"readiness: {warning}"]

        # Turned on while the process runs: the next probe says nothing more.
        await Redis.from_url(aof_off.url).config_set("appendonly", "yes")
        status, body = await readyz(app)
        assert (status, body["warnings"]) == (200, [])


async def test_readyz_in_production_is_quiet_when_redis_persistence_is_on(
        settings, database, aof_on, caplog):
    caplog.set_level(logging.WARNING, logger="analytics.health")
    async with serving_app(settings, env="production", redis_url=aof_on.url) as app:
        status, body = await readyz(app)
    assert (status, body["warnings"]) == (200, [])
    assert not [r for r in caplog.records if r.name == "analytics.health"]


async def test_readyz_in_development_does_not_ask(settings, database, aof_off):
    """Development and test Redis run without persistence: nothing to say there."""
    async with serving_app(settings, env="development", redis_url=aof_off.url) as app:
        status, body = await readyz(app)
    assert (status, body["warnings"]) == (200, [])


async def test_readyz_says_when_persistence_cannot_be_checked(settings, database, aof_on):
    """A managed Redis may refuse INFO: unknown is worth a warning too, never a 503."""
    admin = Redis.from_url(aof_on.url)
    await admin.acl_setuser("limited", enabled=True, passwords=["+limited-secret"],
                            keys=["*"], channels=["*"], commands=["+@all", "-info"])
    url = f"redis://limited:limited-secret@127.0.0.1:{aof_on.port}/0"
    async with serving_app(settings, env="production", redis_url=url) as app:
        status, body = await readyz(app)
    assert status == 200
    [warning] = body["warnings"]
    assert "could not be checked" in warning


async def test_every_master_of_a_cluster_is_checked():
    cluster = LocalCluster().start()
    client = make_redis(cluster.url, timeout=5)
    try:
        assert await persistence_warnings(client) == []  # the test cluster runs deploy's settings
        off = cluster.ports[1:]
        for port in off:
            await Redis(port=port).config_set("appendonly", "no")
        warnings = await persistence_warnings(client)
        assert len(warnings) == len(off)
        assert {p for p in off if any(f":{p} " in w for w in warnings)} == set(off), warnings
        assert all("Redis persistence is off on master" in w for w in warnings)
    finally:
        await client.aclose()
        await asyncio.to_thread(cluster.stop)


async def scheduler_output(settings, redis_url: str, until: str, **env) -> str:
    """The output of a real `analytics scheduler` in production until a line holds `until`."""
    from tests.support.outages import Logged
    from tests.support.polling import eventually as poll

    production = {"ANALYTICS_ENV": "production", "PUBLIC_URL": "https://analytics.example.com",
                  "SECRET_KEY": "a production secret of more than thirty-two bytes"}
    process = Logged(start_process(settings, "scheduler", REDIS_URL=redis_url,
                                   **{**production, **env}))
    try:
        await poll(lambda: process.matching(until), 60, what=until)
    finally:
        code = await process.stop()
    assert code == 0, process.output
    return process.output


async def test_scheduler_start_up_log_warns_when_redis_persistence_is_off(settings, aof_off):
    """At start, before any flush: even with Postgres down, when no flush can work."""
    output = await scheduler_output(settings, aof_off.url, "Redis persistence is off",
                                    DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")
    lines = output.splitlines()
    started = next(i for i, line in enumerate(lines) if "scheduler started" in line)
    warned = [i for i, line in enumerate(lines) if "Redis persistence is off" in line]
    assert len(warned) == 1 and warned[0] > started, output
    assert "WARNING analytics.scheduler" in lines[warned[0]]


async def test_scheduler_start_up_log_says_when_redis_persistence_is_on(settings, database, aof_on):
    output = await scheduler_output(settings, aof_on.url, "Redis persistence is on")
    assert "persistence is off" not in output


async def test_scheduler_checks_again_when_redis_comes_back(settings, database, caplog):
    """A Redis restarted by hand may come back without its append-only file."""
    from app.clients import Clients
    from app.ops.scheduler import Worker

    caplog.set_level(logging.INFO, logger="analytics.scheduler")
    server = RedisServer(config=(REDIS_CONF,)).start()
    clients = await Clients.open(
        dataclasses.replace(settings, env="production", redis_url=server.url,
                                          jobs_redis_timeout=1.0))
    worker = Worker(clients)
    try:
        await worker.tick()
        await worker.tick()
        server.stop()
        await worker.tick()
        assert worker.failures == 1
        server.overrides["appendonly"] = "no"  # a restart with other settings
        server.start()
        worker.resume_at = 0.0  # no waiting out the backoff
        await worker.tick()
        assert worker.failures == 0
        await worker.tick()
    finally:
        await clients.close()
        server.close()
    messages = [r.getMessage() for r in caplog.records if "persistence" in r.getMessage()]
    assert len(messages) == 2, messages
    assert "persistence is on" in messages[0] and "persistence is off" in messages[1]


def test_the_deploy_config_keeps_what_redis_holds():
    """deploy/redis.conf is what the tests start: its persistence and memory settings."""
    server = RedisServer(config=(REDIS_CONF,)).start()
    try:
        got = {}
        for name in ("appendonly", "appendfsync", "aof-use-rdb-preamble", "maxmemory-policy",
                     "no-appendfsync-on-rewrite", "save"):
            out = subprocess.run(["redis-cli", "-p", str(server.port), "config", "get", name],
                                 capture_output=True, text=True, check=True).stdout.split("\n")
            got[name] = out[1]
    finally:
        server.close()
    assert got == {"appendonly": "yes", "appendfsync": "everysec", "aof-use-rdb-preamble": "yes",
                   "maxmemory-policy": "noeviction", "no-appendfsync-on-rewrite": "no",
                   "save": ""}
