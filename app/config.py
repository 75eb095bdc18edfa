"""Settings, read once from environment variables (see the README's configuration table)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEV_SECRET_FILE = Path(".analytics-secret")


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


def _dev_secret() -> str:
    # Every process of a development checkout (web workers, scheduler, CLI) must hash
    # visitors with the same secret, so the generated one is kept beside the project.
    try:
        return DEV_SECRET_FILE.read_text().strip()
    except FileNotFoundError:
        secret = secrets.token_urlsafe(48)
        try:
            with DEV_SECRET_FILE.open("x") as handle:
                handle.write(secret)
            DEV_SECRET_FILE.chmod(0o600)
        except FileExistsError:
            return DEV_SECRET_FILE.read_text().strip()
        return secret


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    secret_key: str
    env: str
    rate_limit_per_minute: int
    flush_interval_seconds: int
    trusted_proxy_hops: int
    retention_days: int
    stream_max_events: int
    key_prefix: str
    port: int
    web_concurrency: int

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
        return cls(
            database_url=env.get(
                "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/analytics"
            ),
            redis_url=env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            secret_key=secret,
            env=mode,
            rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 100, minimum=1),
            flush_interval_seconds=_int(env, "FLUSH_INTERVAL_SECONDS", 5, minimum=1),
            trusted_proxy_hops=_int(env, "TRUSTED_PROXY_HOPS", 0),
            retention_days=_int(env, "RETENTION_DAYS", 400, minimum=1),
            stream_max_events=_int(env, "STREAM_MAX_EVENTS", 500_000, minimum=1),
            key_prefix=env.get("ANALYTICS_KEY_PREFIX", ""),
            port=_int(env, "PORT", 8000, minimum=1),
            web_concurrency=_int(env, "WEB_CONCURRENCY", os.cpu_count() or 1, minimum=1),
        )
