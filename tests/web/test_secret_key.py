"""SECRET_KEY: long enough in production, and the generated development secret never readable
by other users (security review, second pass, finding 10)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app.settings import DEV_SECRET_FILE, MIN_SECRET_BYTES, ConfigError, Settings
from tests.support.servers import run_cli

# Everything production needs but the secret under test.
PRODUCTION = {"ANALYTICS_ENV": "production", "PUBLIC_URL": "https://analytics.example.com"}


@pytest.mark.parametrize("secret", ["x", "test-secret", "a" * (MIN_SECRET_BYTES - 1),
                                    "é" * 15 + "a"])  # 31 bytes in UTF-8
def test_a_short_secret_is_refused_in_production(secret):
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Settings.from_env({**PRODUCTION, "SECRET_KEY": secret})


@pytest.mark.parametrize("secret", ["a" * MIN_SECRET_BYTES, "é" * 16])  # 32 bytes both
def test_a_secret_of_32_bytes_is_enough(secret):
    assert Settings.from_env({**PRODUCTION, "SECRET_KEY": secret}).secret_key == secret


def test_development_takes_any_secret():
    assert Settings.from_env({"SECRET_KEY": "x"}).secret_key == "x"


def test_the_command_line_says_so_in_one_line(settings):
    result = run_cli(settings, "migrate", **PRODUCTION, SECRET_KEY="x")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("analytics: SECRET_KEY must be at least 32 bytes")


@pytest.fixture
def no_umask():
    # With no umask, a file's mode is exactly what created it.
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_the_generated_secret_is_created_private(tmp_path, monkeypatch, no_umask):
    monkeypatch.chdir(tmp_path)

    def no_chmod(*args, **kwargs):
        pass

    # A file created readable and then chmod'ed is readable for an instant: with chmod
    # made a no-op, what is left is the mode the file was created with.
    monkeypatch.setattr(Path, "chmod", no_chmod)
    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    secret = Settings.from_env({}).secret_key
    made = tmp_path / DEV_SECRET_FILE
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert made.read_text() == secret and len(secret.encode()) >= MIN_SECRET_BYTES
    assert os.listdir(tmp_path) == [DEV_SECRET_FILE.name]  # no scratch file left behind
    assert Settings.from_env({}).secret_key == secret  # every process reads the same one
