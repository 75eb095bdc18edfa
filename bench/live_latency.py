"""Delay from a `/track` response to the live update on the sockets, against a real server.

Starts a `web` process (uvicorn, as `analytics serve` runs it) on a scratch database and Redis
key prefix, connects SOCKETS dashboards to one tenant, then sends EVENTS pageviews one at a
time: each once every socket has the previous one, after a further random pause of 0 to 250 ms
(one tick of the tenant's token bucket), so some events find a snapshot left in the bucket and
go out at once while others wait for its refill. The clock starts when the `/track` response
is read and stops when a socket reads the update showing the event. Prints JSON.

    .venv/bin/python -m bench.live_latency [--events 1000] [--sockets 500]

Uses DATABASE_URL (its server, with a database of its own) and REDIS_URL, as `make run` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import time

import asyncpg
import httpx
import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from app.ops.migrate import migrate
from app.settings import Settings
from bench.stack import drop_scratch
from realtime.event_types import PAGEVIEW
from tests.support.http import bearer
from tests.support.servers import WebServer, web_server

TICK = 0.25


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"median_ms": round(statistics.median(ms), 1), "p99_ms": round(percentile(ms, 0.99), 1),
            "max_ms": round(max(ms), 1)}


async def run(events: int, sockets: int) -> dict:
    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/analytics")
    run_id = secrets.token_hex(4)
    database_url = base.rsplit("/", 1)[0] + f"/analytics_bench_{run_id}"
    settings = Settings.from_env({
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "ANALYTICS_KEY_PREFIX": f"bench:{run_id}:", "SECRET_KEY": "bench-" + run_id,
        "RATE_LIMIT_PER_MINUTE": "1000000", "RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0",
    })
    await migrate(database_url)
    try:
        conn = await asyncpg.connect(database_url)
        tenant = await create_tenant(conn, "Bench cafe", "UTC")
        _, token = await create_token(conn, tenant.id)
        await conn.close()
        async with web_server(settings) as server:
            return await measure(server, tenant.id, token, events, sockets)
    finally:
        redis = Redis.from_url(settings.redis_url)
        try:
            await drop_scratch(redis, f"{settings.key_prefix}*", database_url)
        finally:
            await redis.aclose()


async def measure(server: WebServer, tenant_id: int, token: str, events: int,
                  sockets: int) -> dict:
    url = f"{server.ws}/api/analytics/{tenant_id}/live"
    clients = []
    for start in range(0, sockets, 50):
        batch = await asyncio.gather(*[
            connect(url, additional_headers=bearer(token), max_queue=None)
            for _ in range(start, min(sockets, start + 50))])
        clients.extend(batch)
    for ws in clients:
        assert orjson.loads(await ws.recv())["type"] == "snapshot"

    # arrivals[k][i]: when socket i first saw pageviews_today == k.
    arrivals: dict[int, dict[int, float]] = {}
    complete: dict[int, asyncio.Event] = {}

    async def read(index: int, ws) -> None:
        async for message in ws:
            frame = orjson.loads(message)
            if frame["type"] != "update":
                continue
            k = frame["data"][PAGEVIEW.live]
            seen = arrivals.setdefault(k, {})
            if index not in seen:
                seen[index] = time.perf_counter()
                if len(seen) == sockets and k in complete:
                    complete[k].set()

    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(clients)]
    per_socket: list[float] = []
    first_socket: list[float] = []
    last_socket: list[float] = []
    body = orjson.dumps({"tenant_id": tenant_id, "event_type": PAGEVIEW.name})
    async with httpx.AsyncClient(base_url=server.http) as http:
        for k in range(1, events + 1):
            await asyncio.sleep(random.uniform(0, TICK))
            complete[k] = asyncio.Event()
            response = await http.post("/api/analytics/track", content=body, headers={
                "Content-Type": "application/json", "User-Agent": "Mozilla/5.0 bench"})
            answered = time.perf_counter()
            assert response.status_code == 200, response.text
            if len(arrivals.get(k, {})) < sockets:
                await asyncio.wait_for(complete[k].wait(), 10)
            delays = [t - answered for t in arrivals[k].values()]
            per_socket.extend(delays)
            first_socket.append(min(delays))
            last_socket.append(max(delays))
    for task in readers:
        task.cancel()
    for ws in clients:
        await ws.close()
    return {
        "events": events,
        "sockets": sockets,
        "tick_ms": TICK * 1000,
        "track_response_to_update_every_socket": summary(per_socket),
        "track_response_to_update_first_socket": summary(first_socket),
        "track_response_to_update_last_socket": summary(last_socket),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--sockets", type=int, default=500)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args.events, args.sockets)), indent=2))


if __name__ == "__main__":
    main()
