"""The run's own settings: a database and Redis key prefix named after RUN, on the real servers
(or the Redis Cluster `TEST_REDIS=cluster` starts)."""

from __future__ import annotations

import dataclasses
import os
import secrets

from app.settings import Settings

RUN = secrets.token_hex(4)
ADMIN_DSN = os.environ.get("TEST_ADMIN_DATABASE_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")


def redis_url() -> str:
    """The Redis the run uses: the local one, or the cluster `TEST_REDIS=cluster` starts."""
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def make_settings(**overrides) -> Settings:
    base = Settings.from_env({
        "DATABASE_URL": ADMIN_DSN.rsplit("/", 1)[0] + f"/analytics_test_{RUN}",
        "REDIS_URL": redis_url(),
        # Fixed: visitor hashes (HMACs under this key) then fill the same HyperLogLog
        # registers on every run, so tests asserting small exact visitor counts cannot be
        # undone by a chance register collision in one run out of hundreds.
        "SECRET_KEY": "test-secret",
        "ANALYTICS_KEY_PREFIX": f"test:{RUN}:",
    })
    return dataclasses.replace(base, **overrides)
