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
        raise InvalidTimezone(f"unknown timezone {name!r}; use an IANA name such as Europe/Madrid") from None


async def create_tenant(conn: asyncpg.Connection | asyncpg.Pool, name: str, timezone: str = "UTC") -> Tenant:
    zone(timezone)
    row = await conn.fetchrow(
        "INSERT INTO tenants (name, timezone) VALUES ($1, $2) RETURNING id, name, timezone",
        name, timezone,
    )
    return Tenant(**row)


async def get_tenant(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int) -> Tenant | None:
    row = await conn.fetchrow("SELECT id, name, timezone FROM tenants WHERE id = $1", tenant_id)
    return Tenant(**row) if row else None


async def list_tenants(conn: asyncpg.Connection | asyncpg.Pool) -> list[Tenant]:
    rows = await conn.fetch("SELECT id, name, timezone FROM tenants ORDER BY id")
    return [Tenant(**row) for row in rows]


class DirectoryUnavailable(RuntimeError):
    """The directory has never been loaded (Postgres down since the process started)."""


@dataclass
class TenantDirectory:
    """Tenant id -> timezone, kept in memory.

    A miss asks Postgres for tenants newer than the newest known one, so new tenants are seen
    without a restart. After a look-up that found nothing, misses are answered from memory
    for a second, so a flood of unknown ids costs Postgres one query a second.
    """

    pool: asyncpg.Pool
    miss_interval: float = 1.0
    _zones: dict[int, ZoneInfo] = field(default_factory=dict)
    _loaded: bool = False
    _last_fruitless: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reload(self) -> None:
        rows = await self.pool.fetch("SELECT id, timezone FROM tenants")
        self._zones = {row["id"]: zone(row["timezone"]) for row in rows}
        self._loaded = True

    async def timezone(self, tenant_id: int) -> ZoneInfo | None:
        found = self._zones.get(tenant_id)
        if found is not None:
            return found
        async with self._lock:
            if tenant_id in self._zones:
                return self._zones[tenant_id]
            now = time.monotonic()
            if self._loaded and now - self._last_fruitless < self.miss_interval:
                return None
            try:
                if not self._loaded:
                    await self.reload()
                else:
                    await self._learn_new()
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
                if not self._loaded:
                    raise DirectoryUnavailable("the tenant directory is not loaded yet") from None
            if tenant_id not in self._zones:
                self._last_fruitless = now
        return self._zones.get(tenant_id)

    async def _learn_new(self) -> None:
        newest = max(self._zones, default=0)
        rows = await self.pool.fetch(
            "SELECT id, timezone FROM tenants WHERE id > $1", newest, timeout=0.5
        )
        for row in rows:
            self._zones[row["id"]] = zone(row["timezone"])
