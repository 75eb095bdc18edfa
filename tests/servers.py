"""Real processes for tests: throwaway redis-servers and the product's own commands."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANALYTICS = str(Path(sys.executable).with_name("analytics"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class RedisServer:
    """A redis-server of the test's own on a loopback port; stop() and start() simulate outages."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="analytics-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def env_for(settings, **extra) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.secret_key,
        "ANALYTICS_KEY_PREFIX": settings.key_prefix,
        "RATE_LIMIT_PER_MINUTE": str(settings.rate_limit_per_minute),
        "FLUSH_INTERVAL_SECONDS": str(settings.flush_interval_seconds),
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(settings, *args: str, input: str | None = None, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYTICS, *args], env=env_for(settings, **extra), cwd=ROOT,
                          capture_output=True, text=True, input=input, timeout=120)


def start_process(settings, *args: str, **extra) -> subprocess.Popen:
    return subprocess.Popen([ANALYTICS, *args], env=env_for(settings, **extra), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
