"""The run's own settings: a database and Redis key prefix named after RUN, on the real servers
(or the Redis Cluster `TEST_REDIS=cluster` starts)."""

from __future__ import annotations

import dataclasses
import os
import secrets

from app.settings import Settings

# TEST_RUN names a run from outside (tests/test_run_hygiene.py runs one and looks after it).
RUN = os.environ.get("TEST_RUN") or secrets.token_hex(4)
ADMIN_DSN = os.environ.get("TEST_ADMIN_DATABASE_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")


def redis_url() -> str:
    """The Redis the run uses: the local one, or the cluster `TEST_REDIS=cluster` starts."""
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def database_url(run: str = RUN) -> str:
    return ADMIN_DSN.rsplit("/", 1)[0] + f"/analytics_test_{run}"


def key_prefix(run: str = RUN) -> str:
    return f"test:{run}:"


def make_settings(**overrides) -> Settings:
    base = Settings.from_env({
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url(),
        # Fixed: visitor hashes (HMACs under this key) then fill the same HyperLogLog
        # registers on every run, so tests asserting small exact visitor counts cannot be
        # undone by a chance register collision in one run out of hundreds.
        "SECRET_KEY": "test-secret",
        "ANALYTICS_KEY_PREFIX": key_prefix(),
    })
    return dataclasses.replace(base, **overrides)
