"""Failed-login throttling, shared by every web process via Redis: per client, and per account
without letting anyone lock its owner out.

- A client (an IPv4 address, an IPv6 /64) with `client_limit` failures in the window gets 429,
  whatever accounts it tried.
- An account with `account_limit` failures in the window gets 429 for the clients that failed
  on it; any other client still gets in, after a delay that doubles with each further failure
  (`first_delay`, then 2, 4, 8 times that, at most `max_delay`). So five wrong passwords from
  anywhere cannot keep the owner out (the lockout OWASP warns about), while a guesser is held
  to one try per address and window, each slower than the last.

Each key is a sorted set of attempt times over a rolling window. Accounts and clients are
named by a keyed hash (HMAC-SHA-256 with a key derived from the server secret): Redis never
holds an email or a client address.
"""

from __future__ import annotations

import dataclasses
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
    pair_key: str  # this client's failures on this account
    client_key: str
    member: str
    delay: float = 0.0  # seconds to wait before the password is checked


@dataclass(frozen=True)
class LoginThrottle:
    redis: Redis
    keys: Keys
    secret: bytes
    account_limit: int = ACCOUNT_LIMIT
    client_limit: int = CLIENT_LIMIT
    window: int = LOGIN_WINDOW_SECONDS
    first_delay: float = 1.0
    max_delay: float = 10.0

    def _name(self, kind: str, value: str) -> str:
        return hmac.new(self.secret, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def client_key(self, address: str) -> str:
        return self.keys.login_failures_client(self._name("client", client_name(address)))

    def delay_after(self, failures: int) -> float:
        """The wait of a client with no failures of its own on an account that has `failures`
        (this attempt included) in the window."""
        over = failures - self.account_limit
        if over <= 0:
            return 0.0
        return min(self.first_delay * 2 ** min(over - 1, 32), self.max_delay)

    async def begin(self, account: str, address: str, now: float) -> Attempt:
        """Count this attempt as a failure up front, or raise Throttled. `account` is the
        email as the user look-up compares it (`app.accounts.users.find_account`).

        Counting before the password is checked means concurrent guesses cannot all slip under
        the limits; `succeeded` takes the attempt back.
        """
        account_digest = self._name("account", account)
        client_digest = self._name("client", client_name(address))
        attempt = Attempt(
            self.keys.login_failures_account(account_digest),
            self.keys.login_failures_pair(account_digest, client_digest),
            self.keys.login_failures_client(client_digest),
            f"{now:.6f}:{secrets.token_hex(6)}",
        )
        since = now - self.window
        # One transaction per slot: the client's key and the account's may live on different
        # Redis Cluster nodes; the account's and the pair's share a hash tag.
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(attempt.client_key, "-inf", since)
            pipe.zadd(attempt.client_key, {attempt.member: now})
            pipe.zcard(attempt.client_key)
            pipe.zrange(attempt.client_key, 0, 0, withscores=True)
            pipe.expire(attempt.client_key, self.window + 1)
            _, _, client_count, client_oldest, _ = await pipe.execute()
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in (attempt.account_key, attempt.pair_key):
                pipe.zremrangebyscore(key, "-inf", since)
                pipe.zadd(key, {attempt.member: now})
                pipe.expire(key, self.window + 1)
            pipe.zcard(attempt.account_key)
            pipe.zcard(attempt.pair_key)
            # The latest failure of this client on the account before this attempt.
            pipe.zrange(attempt.pair_key, -2, -2, withscores=True)
            *_, account_count, pair_count, pair_latest = await pipe.execute()

        retry_after = 0
        if client_count > self.client_limit:
            retry_after = self._until_gone(client_oldest, now)
        elif account_count > self.account_limit and pair_count > 1:
            # This client already failed on an account that is being guessed at: it waits
            # until that failure leaves the window.
            retry_after = self._until_gone(pair_latest, now)
        if retry_after:
            await self._withdraw(attempt)
            raise Throttled(retry_after)
        delay = self.delay_after(account_count)
        return dataclasses.replace(attempt, delay=delay)

    def _until_gone(self, entry: list[tuple[bytes, float]], now: float) -> int:
        return max(math.ceil(entry[0][1] + self.window - now), 1) if entry else 1

    async def succeeded(self, attempt: Attempt) -> None:
        """A correct password forgives the failures this client made on the account (a typo
        before the right password), not those of other clients, which would let a guesser
        start over each time the owner logs in; the client's own count keeps every failure,
        or one valid account would let a client reset its own limit between guesses at
        others."""
        mine = await self.redis.zrange(attempt.pair_key, 0, -1)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(attempt.account_key, attempt.member, *mine)
            pipe.delete(attempt.pair_key)
            await pipe.execute()
        await self.redis.zrem(attempt.client_key, attempt.member)

    async def _withdraw(self, attempt: Attempt) -> None:
        # A refused attempt checks no password, so it must not push the lockout further out.
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(attempt.account_key, attempt.member)
            pipe.zrem(attempt.pair_key, attempt.member)
            await pipe.execute()
        await self.redis.zrem(attempt.client_key, attempt.member)
