"""`analytics demo`: a demo tenant, its token and a week of synthetic traffic.

The traffic goes through the real ingestion path (the same script, counters and stream) at
past times, then through a flush, so the demo shows what production would.
"""

from __future__ import annotations

import json
import os
import random
import secrets
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from app.accounts.tenants import Tenant, create_tenant
from app.accounts.tokens import create_token
from app.accounts.users import add_membership, create_user, get_user_by_email, set_password
from app.clients import opened
from app.ops.scheduler import Worker
from app.services import make_ingestor
from app.settings import Settings
from realtime.ingest import Ingestor, Outcome, Sender
from realtime.validation import parse_event
from rollups.locks import Locking

DEMO_NAME = "Demo Café"
DEMO_EMAIL = "demo@example.com"
DEMO_TIMEZONE = "Europe/Madrid"
BROWSERS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Safari/605.1.15"),
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0 Mobile Safari/537.36"),
)


@dataclass(frozen=True)
class Demo:
    tenant: Tenant
    token: str
    email: str
    password: str
    events: int
    created: bool


# The visitor's behaviour is data (demo_visit.json), so the demo names no event type itself.
_DATA = json.loads((Path(__file__).parent / "demo_visit.json").read_text())
VISIT, ARRIVALS, NETWORKS = _DATA["steps"], _DATA["arrivals"], _DATA["networks"]


def _value(rng: random.Random, choices):
    if isinstance(choices, list):
        return rng.choice(choices)
    return rng.randint(choices["from"], choices["to"])


def visit(rng: random.Random) -> list[tuple[str, dict | None]]:
    """One visitor's events, in order: what a landing page of a café would see."""
    events: list[tuple[str, dict | None]] = []
    arrival = rng.choice(ARRIVALS)
    for step in VISIT:
        if step.get("unless") in {name for name, _ in events}:
            continue
        if step["chance"] < 1 and rng.random() >= step["chance"]:
            continue
        metadata = {k: _value(rng, v) for k, v in step.get("metadata", {}).items()}
        if "path" in metadata:  # the pageview: how the visitor arrived
            metadata.update(arrival)
        metadata = metadata or None
        events.append((step["event_type"], metadata))
    return events


async def generate_week(ingestor: Ingestor, tenant: Tenant, now: float, seed: int = 42) -> int:
    rng = random.Random(seed)
    zone = ZoneInfo(tenant.timezone)
    accepted = 0
    for days_ago in range(6, -1, -1):
        day_start = now - days_ago * 86_400 - (now % 86_400)
        for _ in range(rng.randint(25, 70)):
            moment = day_start + rng.uniform(8, 22) * 3600
            if moment > now:
                continue
            sender = Sender(f"{rng.choice(NETWORKS)}.{rng.randint(1, 254)}", rng.choice(BROWSERS),
                            "https://demo.example/")
            for offset, (event_type, metadata) in enumerate(visit(rng)):
                body = {"tenant_id": tenant.id, "event_type": event_type}
                if metadata is not None:
                    body["metadata"] = metadata
                event, meta = parse_event(orjson.dumps(body))
                result = await ingestor.ingest(event, meta, sender, zone, moment + offset * 20)
                accepted += result.outcome is Outcome.ACCEPTED
    return accepted


async def seed_demo(settings: Settings) -> Demo:
    async with opened(settings) as clients:
        pool = clients.pool
        row = await pool.fetchrow(
            "SELECT id, name, timezone FROM tenants WHERE name = $1 ORDER BY id LIMIT 1", DEMO_NAME
        )
        created = row is None
        tenant = await create_tenant(pool, DEMO_NAME, DEMO_TIMEZONE) if created else Tenant(**row)
        _, token = await create_token(pool, tenant.id, "demo")
        # The demo owner's password is new on every run: it is shown here and kept nowhere.
        password = os.environ.get("ANALYTICS_PASSWORD") or secrets.token_urlsafe(12)
        user = await get_user_by_email(pool, DEMO_EMAIL)
        if user is None:
            user = await create_user(pool, DEMO_EMAIL, password)
        else:
            await set_password(pool, user.id, password)
        await add_membership(pool, user.id, tenant.id)
        events = 0
        if created:
            events = await generate_week(make_ingestor(clients), tenant, clients.clock())
            await Worker(clients).flush(Locking.WAIT)
        return Demo(tenant, token, DEMO_EMAIL, password, events, created)
