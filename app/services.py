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
from app.throttle import LoginThrottle
from realtime.ingest import Ingestor
from realtime.keys import Keys
from realtime.privacy import DailySalts, derive_key
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
    login_throttle: LoginThrottle
    clock: Callable[[], float] = field(default=time.time)


def make_ingestor(settings: Settings, redis: Redis, keys: Keys, scripts: Scripts) -> Ingestor:
    return Ingestor(
        keys, DailySalts(redis, keys), derive_key(settings.secret_key, "visitors"),
        settings.rate_limit_per_minute, settings.stream_max_events, scripts.track,
    )


def services() -> Services:
    return current_app.extensions["analytics"]
