"""What a running web process holds: settings, clients and the domain objects built on them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from quart import current_app
from redis.asyncio import Redis

from app.config import Settings
from app.tenants import TenantDirectory
from realtime.ingest import Ingestor
from realtime.keys import Keys
from realtime.privacy import DailySalts
from realtime.scripts import Scripts


@dataclass
class Services:
    settings: Settings
    keys: Keys
    redis: Redis
    pool: asyncpg.Pool
    scripts: Scripts
    tenants: TenantDirectory
    salts: DailySalts
    ingestor: Ingestor
    clock: Callable[[], float] = field(default=time.time)


def services() -> Services:
    return current_app.extensions["analytics"]
