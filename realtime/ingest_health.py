"""Ingest health: what became of each tenant's events, per minute, for the last hour.

Accepted and rate-limited events are counted by the script that decides them
(scripts/track.lua), in the same call. The outcomes that never reach Redis (a crawler's
event, an invalid body) are counted in process (`IngestTally.add`, a dict update) and added
to Redis by `flush`, every second or so and at shutdown: one pipelined HINCRBY per tenant,
minute and outcome, and an EXPIRE per hash. Each web process adds its own counts, so the
hashes hold the sum over processes and the script.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from redis.asyncio import Redis

from realtime import keys as k

OUTCOMES = ("accepted", "bot", "rate_limited", "invalid")
WINDOW_MINUTES = 60


@dataclass
class IngestTally:
    """Counts not yet added to Redis: (tenant, minute, outcome) -> n."""

    keys: k.Keys
    pending: Counter = field(default_factory=Counter)
    # Flushes take turns: one that finds the counts taken by another on its way returns only
    # once they are in Redis, so a read right after it (GET .../health) sees them.
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def add(self, tenant_id: int, outcome: str, now: float, n: int = 1) -> None:
        self.pending[(tenant_id, int(now // 60), outcome)] += n

    async def flush(self, redis: Redis) -> int:
        """Adds the pending counts to Redis; the number of counts added. On failure the counts
        of the last hour are kept for the next flush (older ones could no longer be shown, so
        a long outage cannot grow the dict without bound; a count may be added twice if only
        the reply was lost, which a health panel can afford). Waits for a flush already on
        its way."""
        async with self._turn:
            return await self._flush(redis)

    async def _flush(self, redis: Redis) -> int:
        if not self.pending:
            return 0
        taken, self.pending = self.pending, Counter()
        try:
            async with redis.pipeline(transaction=False) as pipe:
                hashes = set()
                for (tenant_id, minute, outcome), n in taken.items():
                    key = self.keys.ingest_health(tenant_id, minute)
                    pipe.hincrby(key, outcome, n)
                    hashes.add(key)
                for key in hashes:
                    pipe.expire(key, k.HEALTH_TTL_SECONDS)
                await pipe.execute()
        except BaseException:
            newest = max(minute for _, minute, _ in taken)
            self.pending.update({key: n for key, n in taken.items()
                                 if key[1] > newest - WINDOW_MINUTES})
            raise
        return sum(taken.values())


@dataclass(frozen=True)
class Minute:
    minute: str  # "2026-11-29T19:30Z"
    accepted: int
    bot: int
    rate_limited: int
    invalid: int


async def read_health(redis: Redis, keys: k.Keys, tenant_id: int,
                      now: float) -> list[Minute]:
    """The last WINDOW_MINUTES minutes up to the current one, oldest first."""
    current = int(now // 60)
    minutes = range(current - WINDOW_MINUTES + 1, current + 1)
    async with redis.pipeline(transaction=False) as pipe:
        for minute in minutes:
            pipe.hgetall(keys.ingest_health(tenant_id, minute))
        replies = await pipe.execute()
    result = []
    for minute, reply in zip(minutes, replies, strict=True):
        counts = {_text(name): int(value) for name, value in reply.items()}
        stamp = dt.datetime.fromtimestamp(minute * 60, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
        result.append(Minute(stamp, *(counts.get(outcome, 0) for outcome in OUTCOMES)))
    return result


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
