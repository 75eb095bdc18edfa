"""The one settings object: what the environment sets (the README's configuration table), and
every timeout and interval of the processes, named here once. Tests change any of them with
`dataclasses.replace(settings, ...)` before they build an app or a worker."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEV_SECRET_FILE = Path(".analytics-secret")
# HMAC-SHA-256 keys and session signatures are only as strong as the secret: 32 bytes is
# SHA-256's own size, and what `secrets.token_urlsafe(48)` (the development secret) exceeds.
MIN_SECRET_BYTES = 32


class ConfigError(RuntimeError):
    pass


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _public_url(env: dict[str, str], production: bool) -> str:
    """PUBLIC_URL as an origin without a trailing slash; "" in development when unset (the
    request's host is used then). In production the Host header is the client's to choose, so
    the address we print into snippets and encode into printed QR codes must be configured."""
    raw = env.get("PUBLIC_URL", "").strip()
    if not raw:
        if production:
            raise ConfigError("PUBLIC_URL is required when ANALYTICS_ENV=production: the https "
                              "address people reach the service at, like "
                              "https://analytics.example.com")
        return ""
    url = urlsplit(raw)
    try:
        _ = url.port  # a port that is not a number raises here
    except ValueError:
        raise ConfigError(f"PUBLIC_URL has an invalid port: {raw!r}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"PUBLIC_URL must be an absolute http(s) address like "
                          f"https://analytics.example.com, got {raw!r}")
    if url.query or url.fragment or raw.endswith(("?", "#")):
        raise ConfigError(f"PUBLIC_URL must have no query or fragment, got {raw!r}")
    if url.username is not None or url.password is not None:
        raise ConfigError(f"PUBLIC_URL must not carry a user or password, got {raw!r}")
    if url.path not in ("", "/"):
        # Every route, redirect and static file lives at the root of the host.
        raise ConfigError(f"PUBLIC_URL must be the service's origin with no path, like "
                          f"https://analytics.example.com, got {raw!r}")
    if production and url.scheme != "https":
        raise ConfigError(f"PUBLIC_URL must start with https:// when ANALYTICS_ENV=production "
                          f"(session cookies are Secure and HSTS is sent), got {raw!r}")
    netloc = url.netloc
    if url.port == {"http": 80, "https": 443}[url.scheme]:
        netloc = netloc.rsplit(":", 1)[0]  # as browsers write it in an Origin header
    return f"{url.scheme}://{netloc}"


def _dev_secret(path: Path = DEV_SECRET_FILE) -> str:
    # Every process of a development checkout (web workers, scheduler, CLI) must hash
    # visitors with the same secret, so the generated one is kept beside the project.
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(48)
    # Written whole to a file of our own, created 0600 (never readable by others, not even
    # until a chmod), then linked into place: a process starting at the same moment finds
    # either no file or the whole secret, and the first link wins for everyone.
    scratch = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(scratch, path)
        except FileExistsError:
            return path.read_text().strip()
    finally:
        scratch.unlink(missing_ok=True)
    return secret


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    secret_key: str
    env: str
    rate_limit_per_minute: int
    rate_limit_per_address_per_minute: int  # 0: no limit per address
    flush_interval_seconds: int
    trusted_proxy_hops: int
    retention_days: int
    stream_max_events: int
    key_prefix: str
    port: int
    web_concurrency: int
    # The origin of every absolute URL we print or encode; "" means the request's host.
    public_url: str = ""

    # Timeouts and intervals, in seconds. Not read from the environment.
    # The web process answers 503 within a second when Redis is gone, so it waits little and
    # retries nothing (a script whose reply was lost may have run): connecting, or waiting
    # for a pooled connection, takes at most `redis_connect_timeout`; a reply may take
    # `redis_reply_timeout`, inside /track's `track_deadline`, since a 503 after a late
    # reply cannot say "not counted" and should be rare, not the price of a busy machine.
    redis_connect_timeout: float = 0.4
    redis_reply_timeout: float = 0.8
    track_deadline: float = 0.9
    track_body_timeout: float = 10.0  # a client trickling its body is cut off
    # /track's script calls of one process are coalesced (realtime/batching.py): at most
    # this many events a call, and this many calls on their way at once (per hash slot on
    # a cluster); the events arriving meanwhile wait for the next call.
    track_batch_size: int = 64
    track_batches_in_flight: int = 1
    read_deadline: float = 5.0  # the GET endpoints' whole read
    ready_probe_timeout: float = 1.0  # /readyz, per store
    directory_refresh: float = 60.0  # tenant directory and daily salts, in the background
    directory_lookup_timeout: float = 0.5  # one look-up of a tenant the directory lacks
    # Live sockets. Their Redis client is slower than ingestion's: a late snapshot only
    # delays a frame, while a timeout on the pub/sub connection closes every socket.
    live_redis_timeout: float = 2.0
    live_send_timeout: float = 10.0  # a client that takes longer to accept a frame is dropped
    live_heartbeat: float = 20.0  # a `ping` frame after this long without another
    ingest_health_flush: float = 1.0  # in-process /track outcome counts reach Redis this often
    live_reauth_interval: float = 30.0  # how soon a revoked token or ended session loses sockets
    live_shutdown_grace: float = 2.0  # time sockets get to say 1001 before the server's close
    live_tick: float = 0.25  # a sustained burst of events becomes one update per tick
    live_burst: int = 4  # updates a tenant may get at once before the tick paces them
    live_refresh: float = 10.0  # every watched tenant is recomputed this often
    live_max_events: int = 10  # feed events a socket holds while it does not read
    live_ping_interval: float = 5.0  # a silent pub/sub connection is PINGed after this
    live_ping_timeout: float = 3.0  # and declared dead when the PONG takes longer
    live_reconnect_delays: tuple[float, float] = (0.25, 5.0)  # backoff, first and longest
    ws_ping_interval: float = 20.0  # protocol pings find dead dashboards
    shutdown_grace: float = 10.0  # the web server's graceful shutdown
    # A login on an account with too many recent failures, from a client that has none of
    # its own, waits this long, doubled with each further failure, up to the second.
    login_delays: tuple[float, float] = (1.0, 10.0)
    # The scheduler and the command line may wait: nobody is answered while they do.
    jobs_redis_timeout: float = 10.0
    jobs_connect_timeout: float = 10.0  # the CLI's Postgres connection
    flush_max_backoff: float = 60.0  # the longest pause after failed flushes
    store_probe_timeout: float = 2.0  # the scheduler's check of which store is down
    spans_interval: float = 600.0  # days that are over get their spans (rollups.spans)
    # The drained events are counted into the breakdowns this often, a tenant's events of
    # several passes together (rollups/breakdown_queue.py); `analytics flush` counts at once.
    breakdown_interval: float = 30.0

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        mode = env.get("ANALYTICS_ENV", "development")
        secret = env.get("SECRET_KEY", "")
        if not secret:
            if mode == "production":
                raise ConfigError("SECRET_KEY is required when ANALYTICS_ENV=production")
            secret = _dev_secret()
        elif mode == "production" and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes when "
                              f"ANALYTICS_ENV=production, got {len(secret.encode())}: "
                              "generate one with `python -c 'import secrets; "
                              "print(secrets.token_urlsafe(48))'`")
        return cls(
            database_url=env.get(
                "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/analytics"
            ),
            redis_url=env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            secret_key=secret,
            env=mode,
            rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 100, minimum=1),
            rate_limit_per_address_per_minute=_int(env, "RATE_LIMIT_PER_ADDRESS_PER_MINUTE", 30),
            flush_interval_seconds=_int(env, "FLUSH_INTERVAL_SECONDS", 5, minimum=1),
            trusted_proxy_hops=_int(env, "TRUSTED_PROXY_HOPS", 0),
            retention_days=_int(env, "RETENTION_DAYS", 400, minimum=1),
            stream_max_events=_int(env, "STREAM_MAX_EVENTS", 500_000, minimum=1),
            key_prefix=env.get("ANALYTICS_KEY_PREFIX", ""),
            port=_int(env, "PORT", 8000, minimum=1),
            web_concurrency=_int(env, "WEB_CONCURRENCY", os.cpu_count() or 1, minimum=1),
            public_url=_public_url(env, mode == "production"),
        )
