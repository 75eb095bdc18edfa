"""How a client address becomes something we may keep, and never more than that.

The raw address lives only in the request's memory: events keep a salted SHA-256 whose salt
is random, shared by all processes through Redis and forgotten after its UTC day; visitor
sketches get a keyed hash (HMAC-SHA-256) of tenant, address and user agent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from realtime.days import utc_day
from realtime.keys import Keys

IP_HASH_CHARS = 45
VISITOR_HASH_CHARS = 32
SALT_GRACE_SECONDS = 300


def client_address(remote_addr: str | None, forwarded_for: str | Sequence[str] | None,
                   trusted_hops: int) -> str:
    """The client's address: the socket's, or from X-Forwarded-For as far as we trust proxies.

    `forwarded_for` is every `X-Forwarded-For` line of the request, in order: several lines
    are one list joined by commas (RFC 9110, 5.3), so a client's own line cannot stand in
    for the one our proxy appended, whichever line a framework would have picked. With N
    trusted hops the Nth address from the right is the one our first proxy saw.
    """
    if isinstance(forwarded_for, str):
        forwarded_for = [forwarded_for]
    if trusted_hops > 0 and forwarded_for:
        hops = [part.strip() for part in ",".join(forwarded_for).split(",")]
        if len(hops) >= trusted_hops:
            try:
                return canonical_address(hops[-trusted_hops])
            except ValueError:
                pass
    return remote_addr or ""


def canonical_address(text: str) -> str:
    """The address in its one written form, or ValueError. A dotted quad, by far the most
    common, is checked by the C library (which refuses leading zeros and short forms, as
    `ipaddress` does) rather than parsed into an object."""
    if ":" not in text:
        try:
            socket.inet_pton(socket.AF_INET, text)
        except OSError:
            raise ValueError(f"not an address: {text!r}") from None
        return text
    return str(ipaddress.ip_address(text))


def client_name(address: str) -> str:
    """What counts as one client for limits: an IPv4 address, or an IPv6 /64, the block one
    subscriber (or one attacker) usually holds whole."""
    if ":" not in address:  # IPv4 (client_address gives it in its one form), or not an IP
        return address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def ip_hash(salt: bytes, address: str) -> str:
    return hashlib.sha256(salt + address.encode()).hexdigest()[:IP_HASH_CHARS]


def visitor_hash(key: bytes, tenant_id: int, address: str, user_agent: str) -> str:
    message = f"{tenant_id}\x00{address}\x00{user_agent}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:VISITOR_HASH_CHARS]


def derive_key(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


@dataclass
class DailySalts:
    """Per-process cache of the shared daily salts; one Redis call per day, not per event."""

    redis: Redis
    keys: Keys
    _cache: dict[dt.date, bytes] = field(default_factory=dict)

    async def for_time(self, now: float) -> bytes:
        """The salt of the UTC day `now` falls in."""
        return await self._for_day(utc_day(now), now)

    def cached(self, now: float) -> bytes | None:
        """The salt of `now`'s UTC day if this process has it (it nearly always has: see
        `prefetch`), without a round trip."""
        return self._cache.get(utc_day(now))

    async def _for_day(self, day: dt.date, now: float) -> bytes:
        salt = self._cache.get(day)
        if salt is None:
            salt = await self._fetch(day, now)
            self._cache = {d: s for d, s in self._cache.items() if d >= day - dt.timedelta(days=1)}
            self._cache[day] = salt
        return salt

    async def _fetch(self, day: dt.date, now: float) -> bytes:
        end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        lifetime = int(end_of_day.timestamp() - now) + SALT_GRACE_SECONDS
        key = self.keys.salt(day)
        candidate = secrets.token_hex(32).encode()
        # One atomic command: the first process to ask sets the day's salt, all get it.
        existing = await self.redis.set(key, candidate, nx=True, ex=lifetime, get=True)
        return existing or candidate

    async def prefetch(self, now: float) -> None:
        """Fetch today's and tomorrow's salts ahead, so midnight costs no request a round trip."""
        today = utc_day(now)
        await self._for_day(today, now)
        await self._for_day(today + dt.timedelta(days=1), now)
