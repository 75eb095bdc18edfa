"""The read path of every GET of numbers: one Redis round trip for the tenant's generations,
authorize, resolve the tenant's timezone, run one read within the deadline (503 when a store
fails), answer JSON.

The generations (realtime/generations.py) let a read skip Postgres where the answer cannot
be stale: a bearer credential confirmed under the tenant's current credentials generation,
and, for `read_rollups`, an answer read under its current rollups generation the same local
day. When Redis cannot tell, every read goes to Postgres, as without the caches.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar
from zoneinfo import ZoneInfo

import orjson
from quart import Response, request

from app.clients import STORE_ERRORS
from app.http.auth import authorize, cached_bearer
from app.http.errors import store_call
from app.http.tenancy import tenant_zone
from app.services import Services, services
from realtime.days import local_day
from realtime.generations import Generations, current, start_missing

T = TypeVar("T")

_NONE = Generations(None, None)
# Where the read fast path leaves the generations it read for Quart: one round trip a request.
GENERATIONS_READ = "analytics.generations"


async def read(tenant_id: int, reader: Callable[[Services, ZoneInfo], Awaitable[T]]) -> T:
    """The read path of every GET of numbers: authorize, resolve the tenant's timezone, run
    one read within the deadline (503 when a store fails)."""
    svc, _, timezone = await _open(tenant_id)
    async with store_call(svc.settings.read_deadline):
        return await reader(svc, timezone)


async def read_rollups(tenant_id: int, name: Hashable,
                       reader: Callable[[Services, ZoneInfo, float], Awaitable[T]], *,
                       over_period: bool = False) -> T:
    """`read` for an answer that comes from the daily or breakdown rollups alone, so changes
    only at a flush, a drain or a count of the breakdown queue (which renew the rollups
    generation) or at the tenant's midnight: served from the process's cache (the services'
    `period_reads` for an answer `over_period`, larger, else `rollup_reads`) while the
    tenant's rollups generation and local day are those it was read under. `name` tells
    apart the endpoints and what they were asked; `reader` gets the time the day was taken
    from. The answer is shared: never change it.

    Requests that miss together make one read: a flush or drain renews the generation of a
    tenant whose dashboards all ask again at once. The read runs as a task of its own, so a
    request that goes away does not cancel it for the others."""
    svc, generations, timezone = await _open(tenant_id)
    now = svc.clock()
    if generations.rollups is None:
        async with store_call(svc.settings.read_deadline):
            return await reader(svc, timezone, now)
    kept = svc.period_reads if over_period else svc.rollup_reads
    key = _answer_key(name, tenant_id, timezone, now)
    found = kept.get(key, generations.rollups)
    if found is not None:
        return found
    reading = (key, generations.rollups)
    task = svc.rollup_reads_running.get(reading)
    if task is None:
        async def read_and_keep() -> T:
            async with store_call(svc.settings.read_deadline):
                answer = await reader(svc, timezone, now)
            kept.put(key, generations.rollups, answer)
            return answer

        def finished(done: asyncio.Task) -> None:
            svc.rollup_reads_running.pop(reading, None)
            if not done.cancelled():
                done.exception()  # retrieved, even when every request waiting went away

        task = svc.rollup_reads_running[reading] = asyncio.create_task(read_and_keep())
        task.add_done_callback(finished)
    return await asyncio.shield(task)


async def tenant_generations(svc: Services, tenant_id: int) -> Generations | None:
    """The tenant's generations; None when Redis cannot tell."""
    try:
        return await current(svc.redis, svc.keys, tenant_id)
    except STORE_ERRORS:
        return None


def cached_rollups_answer(svc: Services, tenant_id: int, name: str, credentials: str,
                          generations: Generations | None) -> bytes | None:
    """What `read_rollups` would answer to these bearer credentials, when everything it
    needs is in the process's caches under `generations`, just read; None otherwise. No I/O:
    the read fast path (app/http/read_fastpath.py) answers with it ahead of Quart."""
    timezone = svc.tenants.known_zone(tenant_id)
    if timezone is None or generations is None or None in (generations.rollups,
                                                           generations.credentials):
        return None
    now = svc.clock()
    principal = cached_bearer(svc, tenant_id, generations.credentials, credentials,
                              dt.datetime.fromtimestamp(now, dt.UTC))
    if principal is None or tenant_id not in principal.tenant_ids:
        return None
    return svc.rollup_reads.get(_answer_key(name, tenant_id, timezone, now), generations.rollups)


def _answer_key(name: Hashable, tenant_id: int, timezone: ZoneInfo, now: float) -> tuple:
    return name, tenant_id, local_day(now, timezone)


async def _open(tenant_id: int) -> tuple[Services, Generations, ZoneInfo]:
    svc = services()
    # Read before anything it vouches for is read from Postgres (see realtime/generations.py),
    # here or by the read fast path, which hands a request it cannot answer on to Quart.
    if GENERATIONS_READ in request.scope:
        generations = request.scope[GENERATIONS_READ]
    else:
        generations = await tenant_generations(svc, tenant_id)
    if generations is None or None in (generations.rollups, generations.credentials):
        await authorize(tenant_id)
        if generations is not None:
            await _start_missing(svc, tenant_id, generations)
        return svc, _NONE, await tenant_zone(svc, tenant_id)
    await authorize(tenant_id, generations.credentials)
    return svc, generations, await tenant_zone(svc, tenant_id)


async def _start_missing(svc: Services, tenant_id: int, generations: Generations) -> None:
    """Only once authorized: a caller with no credentials starts nothing in Redis."""
    with contextlib.suppress(*STORE_ERRORS):  # the next read tries again
        await start_missing(svc.redis, svc.keys, tenant_id, generations)


def json_response(document: dict) -> Response:
    return encoded_json_response(orjson.dumps(document))


def encoded_json_response(body: bytes) -> Response:
    """A JSON answer already encoded (as `read_rollups` keeps it)."""
    return Response(body, content_type="application/json")
