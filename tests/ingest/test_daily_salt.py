"""The daily salt is gone from Redis once its UTC day and the grace for late events have
ended, so a stored address hash is pseudonymous only while its day's salt exists (security
review, second pass, finding 9). `now` is pinned; the key's TTL tells when Redis drops it."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest

from realtime.keys import Keys
from realtime.privacy import SALT_GRACE_SECONDS, DailySalts
from tests.support.settings import RUN

SLACK = 5  # seconds Redis's own clock may have run between setting the key and asking


def moment(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> float:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second,
                       tzinfo=dt.UTC).timestamp()


def gone_at(day: dt.date) -> float:
    """When the day's salt must be gone: its end, plus the grace."""
    return moment(day + dt.timedelta(days=1), 0) + SALT_GRACE_SECONDS


@pytest.fixture
def salt_keys(redis) -> Keys:
    # A prefix of the test's own: the salts of far-off days below are nobody else's.
    return Keys(f"test:{RUN}:salt-{secrets.token_hex(4)}:")


@pytest.mark.parametrize("at", [(0, 0, 0), (0, 2, 0), (12, 0, 0), (23, 59, 59)])
async def test_the_days_salt_expires_when_the_day_and_its_grace_end(redis, salt_keys, at):
    day = dt.date(2031, 3, 14)
    now = moment(day, *at)
    salts = DailySalts(redis, salt_keys)
    salt = await salts.for_time(now)
    key = salt_keys.salt(day)
    assert await redis.get(key) == salt
    ttl = await redis.ttl(key)
    assert ttl > 0, "a salt without an expiry would make its day's hashes reversible forever"
    assert gone_at(day) - SLACK <= now + ttl <= gone_at(day)


async def test_a_prefetched_salt_expires_with_its_own_day(redis, salt_keys):
    today = dt.date(2031, 4, 1)
    now = moment(today, 23, 30)
    await DailySalts(redis, salt_keys).prefetch(now)
    for day in (today, today + dt.timedelta(days=1)):
        ttl = await redis.ttl(salt_keys.salt(day))
        assert gone_at(day) - SLACK <= now + ttl <= gone_at(day), day
    # Only those two: no salt is kept for a day that has not begun or has ended.
    found = [key async for key in redis.scan_iter(match=salt_keys.salt(today)[:-10] + "*")]
    assert len(found) == 2


async def test_every_salt_the_app_made_has_an_expiry(app, client, tenant, redis, keys):
    from tests.support.http import track

    assert (await track(client, tenant.id)).status_code == 200
    found = [key async for key in redis.scan_iter(match=keys.salt(dt.date(2000, 1, 1))[:-10] + "*")]
    assert found
    for key in found:
        assert 0 < await redis.ttl(key) <= 2 * 86_400 + SALT_GRACE_SECONDS
