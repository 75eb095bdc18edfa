"""What a running web process holds: its clients and the domain objects built on them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from quart import current_app

from app.accounts.tenants import TenantDirectory
from app.accounts.throttle import LoginThrottle
from app.clients import Clients, is_cluster
from realtime.batching import Batcher
from realtime.bots import warm_up
from realtime.geo import Countries
from realtime.ingest import Ingestor, track_limits
from realtime.ingest_health import IngestTally
from realtime.privacy import DailySalts, derive_key
from rollups.cache import GenerationCache

PERIOD_READS_KEPT = 1000


@dataclass(kw_only=True)
class Services(Clients):
    tenants: TenantDirectory
    salts: DailySalts
    ingestor: Ingestor
    login_throttle: LoginThrottle
    ingest_health: IngestTally
    # What /readyz last logged about Redis persistence: it logs again only when this changes.
    redis_warnings_logged: tuple[str, ...] = ()
    # Checked at every use against the tenant's generations (realtime/generations.py): bearer
    # credentials Postgres confirmed (app/http/auth.py), and answers read from the rollups
    # (app/http/reads.py): the summaries, and apart, answers over periods (/stats and the
    # breakdowns), larger (up to 100 values of up to 200 characters, a series of up to 400
    # days), so fewer of them: the cache stays within tens of megabytes.
    credentials: GenerationCache = field(default_factory=GenerationCache)
    rollup_reads: GenerationCache = field(default_factory=GenerationCache)
    period_reads: GenerationCache = field(
        default_factory=lambda: GenerationCache(PERIOD_READS_KEPT))
    # The reads of those answers under way, by key and generation: one for all who ask.
    rollup_reads_running: dict = field(default_factory=dict)

    @classmethod
    async def start(cls, clients: Clients) -> Services:
        settings = clients.settings
        ingestor = make_ingestor(clients)
        warm_up()
        return cls(
            **{f.name: getattr(clients, f.name) for f in dataclasses.fields(Clients)},
            tenants=TenantDirectory(clients.pool, settings.directory_lookup_timeout),
            salts=ingestor.salts,
            ingestor=ingestor,
            login_throttle=LoginThrottle(clients.redis, clients.keys,
                                         derive_key(settings.secret_key, "login-throttle"),
                                         first_delay=settings.login_delays[0],
                                         max_delay=settings.login_delays[1]),
            ingest_health=IngestTally(clients.keys),
        )


def make_ingestor(clients: Clients) -> Ingestor:
    settings = clients.settings
    limits = track_limits(settings.rate_limit_per_minute,
                          settings.rate_limit_per_address_per_minute, settings.stream_max_events)
    return Ingestor(
        clients.keys, DailySalts(clients.redis, clients.keys),
        derive_key(settings.secret_key, "visitors"),
        Batcher(clients.scripts.track, limits, timeout=settings.track_deadline,
                max_size=settings.track_batch_size,
                max_in_flight=settings.track_batches_in_flight),
        per_shard=is_cluster(settings.redis_url),
        countries=Countries.load(),
    )


def services() -> Services:
    return current_app.extensions["analytics"]
