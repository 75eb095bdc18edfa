"""Tenants: storage, and the in-process directory the ingestion path checks without Postgres."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg


@dataclass(frozen=True)
class Tenant:
    id: int
    name: str
    timezone: str


class InvalidTimezone(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimezone(
            f"unknown timezone {name!r}; use an IANA name such as Europe/Madrid") from None


async def create_tenant(conn: asyncpg.Connection | asyncpg.Pool, name: str,
                        timezone: str = "UTC") -> Tenant:
    zone(timezone)
    row = await conn.fetchrow(
        "INSERT INTO tenants (name, timezone) VALUES ($1, $2) RETURNING id, name, timezone",
        name, timezone,
    )
    return Tenant(**row)


class UnknownTenant(LookupError):
    """No tenant has this id: the HTTP answer is 404, the command line's a one-line error."""

    def __init__(self, tenant_id: int) -> None:
        super().__init__(f"tenant {tenant_id} does not exist")
        self.tenant_id = tenant_id


async def get_tenant(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int) -> Tenant | None:
    row = await conn.fetchrow("SELECT id, name, timezone FROM tenants WHERE id = $1", tenant_id)
    return Tenant(**row) if row else None


async def require_tenant(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int) -> Tenant:
    """The tenant; UnknownTenant when there is none."""
    tenant = await get_tenant(conn, tenant_id)
    if tenant is None:
        raise UnknownTenant(tenant_id)
    return tenant


async def list_tenants(conn: asyncpg.Connection | asyncpg.Pool) -> list[Tenant]:
    rows = await conn.fetch("SELECT id, name, timezone FROM tenants ORDER BY id")
    return [Tenant(**row) for row in rows]


class DirectoryUnavailable(RuntimeError):
    """The directory has never been loaded (Postgres down since the process started)."""


@dataclass
class TenantDirectory:
    """Tenant id -> timezone, kept in memory and reloaded in the background.

    An id the directory does not know is looked up by primary key, so a tenant is usable the
    moment it exists. Look-ups are a token bucket (`lookups_per_second`) and an id just
    found missing is not asked again for a second, so a flood of unknown ids costs Postgres
    a bounded trickle of index reads.
    """

    pool: asyncpg.Pool
    lookup_timeout: float = 0.5
    lookups_per_second: float = 20.0
    negative_ttl: float = 1.0
    max_negative: int = 10_000
    _zones: dict[int, ZoneInfo] = field(default_factory=dict)
    _loaded: bool = False
    _missing: dict[int, float] = field(default_factory=dict)
    _tokens: float = 20.0
    _refilled: float = field(default_factory=time.monotonic)
    _inflight: dict[int, asyncio.Future] = field(default_factory=dict)

    async def reload(self) -> None:
        rows = await self.pool.fetch("SELECT id, timezone FROM tenants")
        self._zones = {row["id"]: zone(row["timezone"]) for row in rows}
        self._loaded = True

    def _may_look_up(self, tenant_id: int, now: float) -> bool:
        if now - self._missing.get(tenant_id, float("-inf")) < self.negative_ttl:
            return False
        self._tokens = min(self.lookups_per_second,
                           self._tokens + (now - self._refilled) * self.lookups_per_second)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def knows(self, tenant_id: int) -> bool:
        """Whether the tenant is in memory now (no look-up)."""
        return tenant_id in self._zones

    def known_zone(self, tenant_id: int) -> ZoneInfo | None:
        """The tenant's timezone if it is in memory now (no look-up)."""
        return self._zones.get(tenant_id)

    async def timezone(self, tenant_id: int) -> ZoneInfo | None:
        found = self._zones.get(tenant_id)
        if found is not None:
            return found
        if not self._loaded:
            try:
                await self.reload()
            except (TimeoutError, OSError, asyncpg.PostgresError):
                raise DirectoryUnavailable("the tenant directory is not loaded yet") from None
            return self._zones.get(tenant_id)
        inflight = self._inflight.get(tenant_id)
        if inflight is not None:  # a burst for a new tenant shares one look-up
            return await asyncio.shield(inflight)
        now = time.monotonic()
        if not self._may_look_up(tenant_id, now):
            return None
        task = asyncio.ensure_future(self._look_up(tenant_id, now))
        self._inflight[tenant_id] = task
        return await asyncio.shield(task)

    async def _look_up(self, tenant_id: int, now: float) -> ZoneInfo | None:
        try:
            name = await self.pool.fetchval(
                "SELECT timezone FROM tenants WHERE id = $1", tenant_id,
                timeout=self.lookup_timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return None
        finally:
            self._inflight.pop(tenant_id, None)
        if name is None:
            if len(self._missing) >= self.max_negative:
                self._missing.clear()
            self._missing[tenant_id] = now
            return None
        self._zones[tenant_id] = zone(name)
        return self._zones[tenant_id]


async def tenants_by_ids(conn: asyncpg.Connection | asyncpg.Pool, ids: list[int]) -> list[Tenant]:
    rows = await conn.fetch(
        "SELECT id, name, timezone FROM tenants WHERE id = ANY($1::bigint[]) ORDER BY name, id",
        ids,
    )
    return [Tenant(**row) for row in rows]
