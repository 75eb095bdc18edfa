"""The address as events keep it: SHA-256 over the UTC day's random salt and the address,
so a stored hash can neither be reversed from the address alone nor linked across days."""

from __future__ import annotations

import datetime as dt
import hashlib

from realtime import stream
from realtime.privacy import IP_HASH_CHARS, SALT_GRACE_SECONDS
from tests.support.apps import flush
from tests.support.http import from_address, new_address

DAYS = (dt.date(2031, 1, 15), dt.date(2031, 1, 16))


async def test_the_address_hash_is_salted_and_changes_with_the_day(app, client, tenant, clock,
                                                                  redis, keys, pool):
    address = new_address()
    for day in DAYS:
        clock.now = noon(day)
        assert (await track_from(client, tenant.id, address)).status_code == 200
    first, second = await buffered_hashes(redis, keys, tenant.id)

    unsalted = hashlib.sha256(address.encode()).hexdigest()
    for day, stored in zip(DAYS, (first, second), strict=True):
        assert len(stored) == IP_HASH_CHARS and int(stored, 16) >= 0
        assert not unsalted.startswith(stored), "the hash of the address alone"
        salt = await redis.get(keys.salt(day))
        assert salt, f"no salt for {day}"
        assert stored == hashlib.sha256(salt + address.encode()).hexdigest()[:IP_HASH_CHARS]
    # The same visitor on the next day cannot be linked to the day before.
    assert first != second

    # Postgres keeps exactly these hashes.
    await flush(app)
    rows = await pool.fetch(
        "SELECT ip_hash FROM events WHERE tenant_id = $1 ORDER BY occurred_at", tenant.id)
    assert [row["ip_hash"] for row in rows] == [first, second]


async def test_the_days_salt_is_forgotten_after_its_day(app, client, tenant, clock, redis, keys):
    day = DAYS[0] + dt.timedelta(days=7)
    clock.now = noon(day)
    assert (await track_from(client, tenant.id, new_address())).status_code == 200
    ttl = await redis.ttl(keys.salt(day))
    lifetime = 12 * 3600 + SALT_GRACE_SECONDS  # noon to midnight, and the grace
    # Redis counts the TTL down in real time while the test runs: allow an hour of that.
    assert lifetime - 3600 < ttl <= lifetime


def noon(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(12), dt.UTC).timestamp()


async def track_from(client, tenant_id: int, address: str):
    return await client.post(
        "/api/analytics/track", json={"tenant_id": tenant_id, "event_type": "pageview"},
        headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
        scope_base=from_address(address),
    )


async def buffered_hashes(redis, keys, tenant_id: int) -> list[str]:
    """The `ip` of the tenant's raw events still in the stream, oldest first."""
    entries = await redis.xrange(keys.events(keys.shard_of(tenant_id)))
    events = (stream.decode(fields[stream.FIELD]) for _, fields in entries if fields)
    return [event.ip_hash for event in events if event.tenant_id == tenant_id]
