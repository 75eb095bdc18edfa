"""deploy/ for real, for the deploy tests: Debian's nginx running deploy/'s site (rendered by
deploy/nginx-site.sh on the test's own ports, with a self-signed certificate made by
`openssl`), in front of `web` processes started the way deploy/'s systemd unit starts them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import ANALYTICS, ROOT, env_for, free_port, wait_for_port, wait_ready

DEPLOY = ROOT / "deploy"
WEB_UNIT = DEPLOY / "systemd" / "landing-analytics-web@.service"
SCHEDULER_UNIT = DEPLOY / "systemd" / "landing-analytics-scheduler.service"
INSTALLED = "/opt/landing-analytics/.venv/bin/analytics"  # where the units expect the checkout


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None)


def unit_settings(path: Path, section: str = "Service") -> list[tuple[str, str]]:
    """The `key=value` lines of one section of a systemd unit, in order (keys repeat)."""
    found, current = [], None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section:
            key, _, value = line.partition("=")
            found.append((key.strip(), value.strip()))
    return found


def unit_values(path: Path, key: str) -> list[str]:
    return [value for name, value in unit_settings(path) if name == key]


def web_unit_command(port: int) -> tuple[list[str], dict[str, str]]:
    """What systemd runs for landing-analytics-web@PORT: its ExecStart (with this checkout's
    `analytics`) and its Environment= settings."""
    [exec_start] = unit_values(WEB_UNIT, "ExecStart")
    argv = shlex.split(exec_start.replace("%i", str(port)))
    assert argv[0] == INSTALLED, argv
    env = dict(line.replace("%i", str(port)).split("=", 1)
               for line in unit_values(WEB_UNIT, "Environment"))
    return [ANALYTICS, *argv[1:]], env


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


class Nginx:
    """deploy/nginx-site.conf.in, rendered by deploy/nginx-site.sh with this test's ports and
    included into a minimal nginx.conf of the test's own (no daemon, every path in a temp dir).
    The access log names the upstream(s) of each request."""

    def __init__(self, web_ports: tuple[int, int], host: str = "127.0.0.1") -> None:
        self.host = host
        self.web_ports = web_ports
        self.http_port, self.https_port = free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="analytics-nginx-"))
        self.dir.chmod(0o755)  # workers run as `nobody` when we are root
        self.cert, self.key = self_signed_certificate(self.dir, host)
        self.process: subprocess.Popen | None = None

    @property
    def https(self) -> str:
        return f"https://{self.host}:{self.https_port}"

    @property
    def wss(self) -> str:
        return f"wss://{self.host}:{self.https_port}"

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def render_site(self) -> str:
        env = {**os.environ, "SERVER_NAME": self.host,
               "HTTP_LISTEN": f"{self.host}:{self.http_port}",
               "HTTPS_LISTEN": f"{self.host}:{self.https_port}",
               "WEB_PORT_1": str(self.web_ports[0]), "WEB_PORT_2": str(self.web_ports[1]),
               "TLS_CERT": str(self.cert), "TLS_KEY": str(self.key),
               "CACHE_DIR": str(self.dir / "cache")}
        done = subprocess.run(["sh", str(DEPLOY / "nginx-site.sh")], env=env,
                              capture_output=True, text=True, check=True, timeout=30)
        return done.stdout

    def write_config(self) -> Path:
        (self.dir / "site.conf").write_text(self.render_site())
        temp = "\n".join(f"    {kind}_temp_path {self.dir / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
        conf = self.dir / "nginx.conf"
        conf.write_text(f"""{user}daemon off;
worker_processes 1;
pid {self.dir / "nginx.pid"};
error_log {self.dir / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format upstreams '$status $request_method $request_uri "$upstream_addr" "$upstream_status"';
    access_log {self.dir / "access.log"} upstreams;
{temp}
    include {self.dir / "site.conf"};
}}
""")
        return conf

    def _command(self, *extra: str) -> list[str]:
        return [nginx_binary(), "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                "-e", str(self.dir / "error.log"), *extra]

    def check(self) -> None:
        self.write_config()
        done = subprocess.run(self._command("-t"), capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr

    def start(self) -> Nginx:
        self.check()
        self.process = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for_port(self.https_port)
        wait_for_port(self.http_port)
        return self

    def access_log(self) -> list[str]:
        with contextlib.suppress(FileNotFoundError):
            return (self.dir / "access.log").read_text().splitlines()
        return []

    def error_log(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return (self.dir / "error.log").read_text()
        return ""

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class WebUnit:
    """One `web` process on `port`, run as landing-analytics-web@PORT runs it, with the
    production environment an /etc/landing-analytics.env would give it."""

    settings: object
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None
    exits: list[int] = field(default_factory=list)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        argv, unit_env = web_unit_command(self.port)
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                argv, cwd=ROOT, env=env_for(self.settings, **{**unit_env, **self.env}),
                stdout=out, stderr=subprocess.STDOUT)
        await wait_ready(self.http, self.process, timeout=30)

    async def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as `systemctl stop` sends; the exit status once it is gone."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = await asyncio.to_thread(self.process.wait)
        self.exits.append(code)
        return code


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="analytics-deploy-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
