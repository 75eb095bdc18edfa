"""Every Redis key name and lifetime of the service, built in this one module.

A tenant's keys and the raw-event stream of its shard share one hash tag (`{s7}`), so each
Lua script touches a single hash slot and the layout runs unchanged on Redis Cluster. The
number of shards is fixed: changing it would strand events buffered under the old tags.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

SHARDS = 16

RATE_WINDOW_MS = 60_000
# Live totals, day sketches and minute sketches only serve the live views and the flush;
# Postgres holds the durable copy, so they may expire.
DAY_TTL_SECONDS = 8 * 24 * 3600
TOTALS_TTL_SECONDS = 2 * 24 * 3600
MINUTE_TTL_SECONDS = 6 * 60
ACTIVE_WINDOW_MINUTES = 5
# Failed logins are remembered this long; the throttle counts them over the same window.
LOGIN_WINDOW_SECONDS = 15 * 60
# Ingest health is shown for the last hour; a little longer lets the oldest minute be read.
HEALTH_TTL_SECONDS = 3600 + 5 * 60
DRAIN_GROUP = "drain"
MAX_TENANTS_REMEMBERED = 100_000
# A tenant's generations (realtime/generations.py) outlive any cache entry made from them; an
# expired one is simply started afresh, which only costs the caches a miss.
GENERATION_TTL_SECONDS = 8 * 24 * 3600


@dataclass(frozen=True)
class Keys:
    """Key names under an optional prefix (each test run has its own)."""

    prefix: str = ""
    # A tenant's part of its key names, made once: /track builds ten names an event.
    _tenants: dict[int, str] = field(default_factory=dict, init=False, repr=False,
                                     compare=False, hash=False)

    @staticmethod
    def shard_of(tenant_id: int) -> int:
        return tenant_id % SHARDS

    def tag(self, shard: int) -> str:
        return f"{self.prefix}{{s{shard}}}"

    def _tenant(self, tenant_id: int) -> str:
        try:
            return self._tenants[tenant_id]
        except KeyError:
            if len(self._tenants) >= MAX_TENANTS_REMEMBERED:
                self._tenants.clear()
            name = self._tenants[tenant_id] = f"{self.tag(self.shard_of(tenant_id))}:t:{tenant_id}"
            return name

    def rate(self, tenant_id: int) -> str:
        return f"{self._tenant(tenant_id)}:rate"

    def address_rate(self, tenant_id: int, client_hash: str) -> str:
        """Events one client sent the tenant in the rolling window; `client_hash` is the
        client's address under the day's salt (realtime.privacy), never the address."""
        return f"{self._tenant(tenant_id)}:rate:{client_hash}"

    def pending_counters(self, tenant_id: int, day: dt.date) -> str:
        """Increments not yet flushed to Postgres; moved aside by each flush."""
        return f"{self._tenant(tenant_id)}:d:{day.isoformat()}:new"

    def totals(self, tenant_id: int, day: dt.date) -> str:
        """The day's running totals for live views; never reset by a flush."""
        return f"{self._tenant(tenant_id)}:d:{day.isoformat()}:tot"

    def day_visitors(self, tenant_id: int, day: dt.date) -> str:
        return f"{self._tenant(tenant_id)}:d:{day.isoformat()}:hll"

    def day_leads(self, tenant_id: int, day: dt.date) -> str:
        """The day's leads: visitors who sent an event of a `lead` type (event_types.py)."""
        return f"{self._tenant(tenant_id)}:d:{day.isoformat()}:leads"

    def rollups_generation(self, tenant_id: int) -> str:
        """Changes whenever a flush writes the tenant's rollups (realtime/generations.py)."""
        return f"{self._tenant(tenant_id)}:gen:rollups"

    def credentials_generation(self, tenant_id: int) -> str:
        """Changes before and after any credential of the tenant is revoked."""
        return f"{self._tenant(tenant_id)}:gen:credentials"

    def minute_visitors(self, tenant_id: int, minute: int) -> str:
        """`minute` counts whole minutes since the epoch."""
        return f"{self._tenant(tenant_id)}:m:{minute}:hll"

    def active_visitors(self, tenant_id: int, minute: int) -> list[str]:
        return [
            self.minute_visitors(tenant_id, minute - back)
            for back in range(ACTIVE_WINDOW_MINUTES)
        ]

    def ingest_health(self, tenant_id: int, minute: int) -> str:
        """Hash of the minute's /track outcomes (accepted, bot, rate_limited, invalid);
        `minute` counts whole minutes since the epoch."""
        return f"{self._tenant(tenant_id)}:ih:{minute}"

    def scratch(self, shard: int, n: int = 0) -> str:
        """Short-lived keys a script fills and deletes within one call."""
        return f"{self.tag(shard)}:scratch:{n}"

    def channel(self, tenant_id: int) -> str:
        return f"{self._tenant(tenant_id)}:live"

    def events(self, shard: int) -> str:
        return f"{self.tag(shard)}:events"

    def dirty(self, shard: int) -> str:
        """Set of `tenant|day` whose pending counters changed since the last flush."""
        return f"{self.tag(shard)}:dirty"

    def flush_batch(self, shard: int) -> str:
        return f"{self.tag(shard)}:flush"

    def flush_id(self, shard: int) -> str:
        return f"{self.tag(shard)}:flush:id"

    def salt(self, day: dt.date) -> str:
        return f"{self.prefix}salt:{day.isoformat()}"

    def login_failures_account(self, digest: str) -> str:
        """Recent failed logins for one email; `digest` is a keyed hash, never the email."""
        return f"{self.prefix}login:a:{{{digest}}}"

    def login_failures_pair(self, account_digest: str, client_digest: str) -> str:
        """Recent failed logins of one client on one account: the account's own hash tag, so
        both change in one transaction on Redis Cluster too."""
        return f"{self.prefix}login:a:{{{account_digest}}}:c:{client_digest}"

    def login_failures_client(self, digest: str) -> str:
        """Recent failed logins from one client; `digest` is a keyed hash, never the address."""
        return f"{self.prefix}login:c:{digest}"

    def pattern(self) -> str:
        """Matches every key of this prefix (tests clean up with it)."""
        return f"{self.prefix}*"


def dirty_member(tenant_id: int, day: dt.date) -> str:
    return f"{tenant_id}|{day.isoformat()}"


def parse_dirty_member(member: str) -> tuple[int, dt.date]:
    tenant, day = member.split("|")
    return int(tenant), dt.date.fromisoformat(day)
