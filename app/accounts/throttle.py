"""Failed-login throttling per account and per client, shared by every web process via Redis.

Each key is a sorted set of attempt times over a rolling window. Accounts and clients are
named by a keyed hash (HMAC-SHA-256 with a key derived from the server secret): Redis never
holds an email or a client address.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from realtime.keys import LOGIN_WINDOW_SECONDS, Keys
from realtime.privacy import client_name

ACCOUNT_LIMIT = 5
# Higher than the account limit: several people may share an office or a carrier's address.
CLIENT_LIMIT = 20


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Attempt:
    account_key: str
    client_key: str
    member: str


@dataclass(frozen=True)
class LoginThrottle:
    redis: Redis
    keys: Keys
    secret: bytes
    account_limit: int = ACCOUNT_LIMIT
    client_limit: int = CLIENT_LIMIT
    window: int = LOGIN_WINDOW_SECONDS

    def _name(self, kind: str, value: str) -> str:
        return hmac.new(self.secret, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()[:32]

    async def begin(self, email: str, address: str, now: float) -> Attempt:
        """Count this attempt as a failure up front, or raise Throttled.

        Counting before the password is checked means concurrent guesses cannot all slip under
        the limit; `succeeded` takes the attempt back.
        """
        attempt = Attempt(
            self.keys.login_failures_account(self._name("account", email.strip().lower())),
            self.keys.login_failures_client(self._name("client", client_name(address))),
            f"{now:.6f}:{secrets.token_hex(6)}",
        )
        retry_after = 0
        # One transaction per key: the two keys may live in different Redis Cluster slots.
        for key, limit in ((attempt.account_key, self.account_limit),
                           (attempt.client_key, self.client_limit)):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", now - self.window)
                pipe.zadd(key, {attempt.member: now})
                pipe.zcard(key)
                pipe.zrange(key, 0, 0, withscores=True)
                pipe.expire(key, self.window + 1)
                _, _, count, oldest, _ = await pipe.execute()
            if count > limit:
                retry_after = max(retry_after, math.ceil(oldest[0][1] + self.window - now), 1)
        if retry_after:
            await self._withdraw(attempt)
            raise Throttled(retry_after)
        return attempt

    async def succeeded(self, attempt: Attempt) -> None:
        """A correct password clears the account's failures; the client's stay counted, or one
        valid account would let a client reset its own limit between guesses at others."""
        await self.redis.delete(attempt.account_key)
        await self.redis.zrem(attempt.client_key, attempt.member)

    async def _withdraw(self, attempt: Attempt) -> None:
        # A refused attempt checks no password, so it must not push the lockout further out.
        await self.redis.zrem(attempt.account_key, attempt.member)
        await self.redis.zrem(attempt.client_key, attempt.member)
