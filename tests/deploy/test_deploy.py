"""Production behind a real proxy (make test-deploy): deploy/'s nginx site, with TLS, in front of
two `web` processes started as deploy/'s systemd unit starts them, with ANALYTICS_ENV=production
and TRUSTED_PROXY_HOPS=1.

TLS is real: nginx terminates https with a self-signed certificate that `openssl` makes for
127.0.0.1, and the clients trust exactly that certificate. The clients connect from 127.0.0.2
(all of 127/8 is loopback), so the address nginx sees is not the one the web processes see
(nginx's 127.0.0.1), and each can be told apart in what the app counts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import json
import re
import shutil
import subprocess

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from app.http.errors import MESSAGES, error_body
from realtime.event_types import COUNTER_OF
from tests.support.http import PASSWORD
from tests.support.polling import eventually
from tests.support.proxy import (
    INSTALLED,
    SCHEDULER_UNIT,
    WEB_UNIT,
    Nginx,
    WebUnit,
    nginx_binary,
    temp_dir,
    unit_settings,
    unit_values,
)
from tests.support.servers import ANALYTICS, ROOT, free_port, run_cli

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.skipif(nginx_binary() is None, reason="needs nginx (scripts/nginx.sh)"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
]

HSTS = "max-age=31536000; includeSubDomains"
CLIENT = "127.0.0.2"  # where the test's requests come from, as nginx sees them
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0 deploy-test"


@dataclasses.dataclass
class Deployment:
    nginx: Nginx
    webs: list[WebUnit]
    env: dict[str, str]  # what /etc/landing-analytics.env gives every process

    def client(self, **kwargs) -> httpx.AsyncClient:
        """An https client that trusts nginx's certificate and connects from CLIENT."""
        transport = httpx.AsyncHTTPTransport(verify=self.nginx.client_ssl(), local_address=CLIENT)
        return httpx.AsyncClient(base_url=self.nginx.https, transport=transport, timeout=20,
                                 **kwargs)

    def cli(self, settings, *args: str) -> subprocess.CompletedProcess:
        return run_cli(settings, *args, ANALYTICS_ENV="production", **self.env)


@pytest.fixture(scope="module")
async def deployment(settings, database, redis):
    ports = (free_port(), free_port())
    nginx = Nginx(ports)
    env = {"SECRET_KEY": "deploy-test-secret-" + "k" * 32, "PUBLIC_URL": nginx.https,
           "TRUSTED_PROXY_HOPS": "1",
           # One client sends everything here; limits are not what this file tests.
           "RATE_LIMIT_PER_MINUTE": "1000000", "RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0"}
    with temp_dir() as logs:
        webs = [WebUnit(settings, port, env, logs / f"web-{port}.log") for port in ports]
        try:
            await asyncio.gather(*(web.start() for web in webs))
            nginx.start()
            yield Deployment(nginx, webs, env)
        finally:
            nginx.close()
            for web in webs:
                if web.process is not None:
                    await web.stop()


async def today(deployment: Deployment, tenant_id: int, token: str) -> dict:
    async with deployment.client() as http:
        response = await http.get(f"/api/analytics/{tenant_id}/today",
                                  headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


async def flush(deployment: Deployment, settings) -> dict:
    done = await asyncio.to_thread(deployment.cli, settings, "flush", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- the files --------------------------------------------------------------------------


def test_each_procfile_process_has_a_hardened_production_unit():
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                    if line.strip())
    units = {"web": WEB_UNIT, "scheduler": SCHEDULER_UNIT}
    assert units.keys() == procfile.keys()
    for process, unit in units.items():
        settings = dict(unit_settings(unit))
        [command] = unit_values(unit, "ExecStart")
        # The Procfile's command, from the checkout's venv (the web one bound to loopback).
        assert command.replace(INSTALLED, "analytics").startswith(procfile[process].strip())
        assert "ANALYTICS_ENV=production" in unit_values(unit, "Environment")
        assert settings["EnvironmentFile"] == "/etc/landing-analytics.env"
        assert settings["Restart"] == "on-failure"
        assert settings["User"] == "landing-analytics"
        for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                          "RestrictSUIDSGID", "LockPersonality"):
            assert settings[hardening] == "yes", (unit.name, hardening)
        assert settings["ProtectSystem"] == "strict"
        assert settings["CapabilityBoundingSet"] == ""
    assert "--host 127.0.0.1" in unit_values(WEB_UNIT, "ExecStart")[0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_units():
    """`systemd-analyze verify` finds nothing to say (an unknown or misspelt option included),
    with the checkout's `analytics` standing in for /opt/landing-analytics's."""
    with temp_dir() as directory:
        names = []
        for unit in (WEB_UNIT, SCHEDULER_UNIT):
            text = unit.read_text().replace(INSTALLED, ANALYTICS).replace(
                "WorkingDirectory=/opt/landing-analytics", f"WorkingDirectory={ROOT}")
            (directory / unit.name).write_text(text)
            names.append(unit.name.replace("@.", "@8001."))
        done = subprocess.run(["systemd-analyze", "verify", "--man=no",
                               *(f"./{name}" for name in names)],
                              cwd=directory, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


# -- the client address -----------------------------------------------------------------


async def test_the_client_address_is_the_one_nginx_saw(deployment, settings, pool):
    """Visitors are (address, user agent): requests through nginx from CLIENT with forged
    X-Forwarded-For lines, whatever they say, are one visitor, the same one as a request
    whose last hop says CLIENT; a last hop of nginx's own address is another visitor."""
    tenant = await create_tenant(pool, "Behind nginx")
    _, token = await create_token(pool, tenant.id)
    body = {"tenant_id": tenant.id, "event_type": "pageview"}
    forged = [
        [("X-Forwarded-For", "198.51.100.1")],
        [("X-Forwarded-For", "198.51.100.2, 203.0.113.7")],
        [("X-Forwarded-For", "198.51.100.3"), ("X-Forwarded-For", "198.51.100.4")],
        [("X-Forwarded-For", "not an address")],
        [],
    ]
    async with deployment.client() as http:
        for lines in forged:
            response = await http.post("/api/analytics/track", json=body,
                                       headers=[("User-Agent", BROWSER), *lines])
            assert response.status_code == 200, response.text
    await flush(deployment, settings)
    assert (await today(deployment, tenant.id, token))["visitors_today"] == 1

    # Straight to a web process, the last hop naming an address: the same visitor for CLIENT,
    # another one for nginx's own address (what the app would see without X-Forwarded-For).
    direct = deployment.webs[0].http
    async with httpx.AsyncClient(timeout=20) as http:
        for address, visitors in ((CLIENT, 1), ("127.0.0.1", 2)):
            response = await http.post(f"{direct}/api/analytics/track", json=body,
                                       headers={"User-Agent": BROWSER, "X-Forwarded-For": address})
            assert response.status_code == 200
            await flush(deployment, settings)
            numbers = await today(deployment, tenant.id, token)
            assert numbers["visitors_today"] == visitors, address


# -- the live websocket -----------------------------------------------------------------


async def _frames(ws, wanted, timeout: float = 15) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = orjson.loads(await ws.recv())
            if wanted(frame):
                return frame


async def test_the_live_websocket_works_through_nginx(deployment, pool, owner, tenant):
    """A program's socket (bearer token) and a dashboard's (session cookie, Origin PUBLIC_URL):
    the snapshot, then an update after an event sent through nginx."""
    _, token = await create_token(pool, tenant.id)
    async with deployment.client() as http:
        login = await http.post("/login", json={"email": owner.email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    url = f"{deployment.nginx.wss}/api/analytics/{tenant.id}/live"
    ssl = deployment.nginx.client_ssl()
    async with connect(url, ssl=ssl, additional_headers={"Authorization": f"Bearer {token}"},
                       open_timeout=15) as program, \
            connect(url, ssl=ssl, additional_headers={"Cookie": cookie},
                    origin=deployment.env["PUBLIC_URL"], open_timeout=15) as dashboard:
        snapshots = [await _frames(ws, lambda f: True) for ws in (program, dashboard)]
        assert [s["type"] for s in snapshots] == ["snapshot", "snapshot"]
        calls = snapshots[0]["data"]["call_clicks"]
        async with deployment.client() as http:
            sent = await http.post("/api/analytics/track", headers={"User-Agent": BROWSER},
                                   json={"tenant_id": tenant.id, "event_type": "click_call"})
        assert sent.status_code == 200
        for ws in (program, dashboard):
            update = await _frames(ws, lambda f: f["type"] == "update"
                                   and f["data"]["call_clicks"] == calls + 1)
            assert update["data"]["call_clicks"] == calls + 1


# -- TLS, cookies and HSTS --------------------------------------------------------------


async def test_production_cookies_are_secure_and_every_answer_sends_hsts(deployment, owner, tenant):
    async with deployment.client() as http:
        form = await http.get("/login")
        login = await http.post("/login", json={"email": owner.email, "password": PASSWORD})
        tracked = await http.post("/api/analytics/track", headers={"User-Agent": BROWSER},
                                  json={"tenant_id": tenant.id, "event_type": "pageview"})
        refused = await http.post("/api/analytics/track", content=b"nope",
                                  headers={"Content-Type": "application/json"})
        tracker = [await http.get("/t.js") for _ in range(2)]
        answers = {"login form": form, "login": login, "track": tracked, "track 400": refused,
                   "t.js": tracker[0], "t.js cached": tracker[1],
                   "healthz": await http.get("/healthz"),
                   "dashboard": await http.get(f"/dashboard/{tenant.id}")}
    assert [form.status_code, login.status_code, tracked.status_code] == [200, 200, 200]
    cookies = form.headers.get_list("Set-Cookie") + login.headers.get_list("Set-Cookie")
    assert any(c.startswith("QUART_AUTH=") for c in cookies), cookies
    for cookie in cookies:
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"secure", "httponly"} <= attributes, cookie
    assert {name: r.headers.get_list("Strict-Transport-Security") for name, r in answers.items()
            } == {name: [HSTS] for name in answers}
    # The dashboard's snippet names PUBLIC_URL, whatever Host nginx passed on.
    page = answers["dashboard"].text
    assert f"{deployment.env['PUBLIC_URL']}/t.js" in page.replace("&#34;", '"')


async def test_plain_http_is_redirected_to_https(deployment):
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.get(f"{deployment.nginx.http}/login?next=/dashboard")
    assert response.status_code == 301
    assert response.headers["Location"] == f"{deployment.nginx.https}/login?next=/dashboard"


async def test_the_tracker_is_cached_by_nginx(deployment):
    async with deployment.client() as http:
        answers = [await http.get("/t.js") for _ in range(3)]
    assert {r.status_code for r in answers} == {200}
    assert answers[-1].headers["X-Cache-Status"] == "HIT"
    assert answers[-1].content == answers[0].content
    assert answers[-1].headers["Content-Type"].startswith("application/javascript")


async def test_bodies_are_capped_like_ours(deployment, tenant):
    """16384 bytes reach the app (JSON padded with spaces); one more byte gets nginx's 413,
    in the app's own words."""
    async with deployment.client() as http:
        results = []
        for size in (16384, 16385):
            body = orjson.dumps({"tenant_id": tenant.id, "event_type": "pageview"})
            body = body[:-1] + b" " * (size - len(body)) + b"}"
            assert len(body) == size
            response = await http.post("/api/analytics/track", content=body, headers={
                "Content-Type": "application/json", "User-Agent": BROWSER})
            results.append((response.status_code, response.content))
    assert results[0] == (200, b'{"success":true}')
    assert results[1] == (413, error_body(MESSAGES[413]))
    # nginx answered the second itself: no web process was asked. It logs a refused request
    # once it has read and dropped the rest of its body, which can be after the answer.
    refused = await eventually(
        lambda: [line for line in deployment.nginx.access_log() if line.startswith("413 POST")],
        timeout=10, what="nginx's log line for the 413")
    assert all('"-"' in line for line in refused), refused


# -- rolling restart --------------------------------------------------------------------

KINDS = ("pageview", "click_call", "qr_scan", "click_whatsapp")
RATE = 40  # events a second, through nginx


@dataclasses.dataclass
class Sent:
    seq: int
    tenant: int
    kind: str
    status: int | None = None
    error: str | None = None


async def steady_stream(deployment: Deployment, tenants: list[int], stop: asyncio.Event,
                        sent: list[Sent]) -> None:
    """POSTs /track through nginx at RATE a second, each request in its own task."""
    seqs = itertools.count(1)
    tasks: set[asyncio.Task] = set()

    async def one(http: httpx.AsyncClient, n: int) -> None:
        record = Sent(next(seqs), tenants[n % len(tenants)], KINDS[n % len(KINDS)])
        sent.append(record)
        try:
            response = await http.post(
                "/api/analytics/track", headers={"User-Agent": BROWSER},
                json={"tenant_id": record.tenant, "event_type": record.kind,
                      "metadata": {"seq": record.seq}})
            record.status = response.status_code
        except httpx.HTTPError as error:
            record.error = type(error).__name__

    async with deployment.client(limits=httpx.Limits(max_connections=50)) as http:
        loop = asyncio.get_running_loop()
        begin = loop.time()
        for n in itertools.count():
            delay = begin + n / RATE - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
            task = asyncio.create_task(one(http, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(list(tasks))


async def rollups(dsn: str, tenants: list[int]) -> tuple[dict[int, dict[str, int]],
                                                         collections.Counter]:
    """Per tenant, each column summed over its days; and how many raw events carry each seq."""
    columns = ("events", *sorted({COUNTER_OF[kind] for kind in KINDS}))
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"""SELECT tenant_id, {", ".join(f"sum({c})::bigint AS {c}" for c in columns)}
                FROM daily_rollups WHERE tenant_id = ANY($1::bigint[]) GROUP BY tenant_id""",
            tenants)
        stored = collections.Counter(r[0] for r in await conn.fetch(
            "SELECT (metadata->>'seq')::bigint FROM events WHERE tenant_id = ANY($1::bigint[])",
            tenants))
    finally:
        await conn.close()
    found = {tenant: dict.fromkeys(columns, 0) for tenant in tenants}
    for row in rows:
        found[row["tenant_id"]] = {c: row[c] for c in columns}
    return found, stored


async def test_a_rolling_restart_loses_no_accepted_event(deployment, settings, pool):
    """Both web processes restarted one after the other (SIGTERM, as `systemctl restart`
    sends; back on the same port) under a steady stream of /track through nginx: every event
    answered 200 is counted exactly once and stored once, and nothing else is."""
    tenants = [(await create_tenant(pool, f"Rolling {n}")).id for n in range(2)]
    stop, sent = asyncio.Event(), []
    stream = asyncio.create_task(steady_stream(deployment, tenants, stop, sent))
    log_start = len(deployment.nginx.access_log())
    try:
        await asyncio.sleep(3)
        for web in deployment.webs:
            code = await web.stop()
            assert code in (0, -15), code  # uvicorn re-raises the SIGTERM it handled
            await asyncio.sleep(1)  # traffic flows to the other one alone meanwhile
            await web.start()
            await asyncio.sleep(3)  # nginx's fail_timeout (2 s) passes: both serve again
    finally:
        stop.set()
        await stream

    statuses = collections.Counter(s.status or s.error for s in sent)
    accepted = [s for s in sent if s.status == 200]
    await flush(deployment, settings)
    found, stored = await rollups(settings.database_url, tenants)
    want = {tenant: dict.fromkeys(found[tenant], 0) for tenant in tenants}
    for s in accepted:
        want[s.tenant]["events"] += 1
        want[s.tenant][COUNTER_OF[s.kind]] += 1

    # Requests nginx sent on to the other process because one refused the connection.
    lines = [line for line in deployment.nginx.access_log()[log_start:]
             if "/api/analytics/track" in line]
    retried = [line for line in lines if re.search(r'"[^"]+, [^"]+"', line)]
    print(f"\nrolling restart: {len(sent)} sent through nginx, {statuses}, "
          f"{len(accepted)} answered 200, {sum(stored.values())} stored, "
          f"{sum(f['events'] for f in found.values())} counted; {len(retried)} requests "
          "retried on the other process after a refused connection")

    assert len(sent) >= RATE * 8
    # Every request was answered: 200, or 502 for one that nginx had already sent to a process
    # which reset the connection unread (one still in its listen queue when it stopped
    # listening), which nginx rightly does not send to the other process too. A refused
    # connection is always retried: such a 502 is a failure of the setup.
    assert statuses.keys() <= {200, 502}, statuses
    resets = re.findall(r"(?:reset by peer|prematurely closed)[^\n]*while reading response "
                        r"header from upstream[^\n]*POST /api/analytics/track",
                        deployment.nginx.error_log())
    assert statuses[502] == len(resets), (statuses, deployment.nginx.error_log())
    assert found == want
    assert set(stored) == {s.seq for s in accepted} and max(stored.values()) == 1
    assert retried, "no request met a stopped process: the restart proved nothing"
    # Retries only ever follow a refused connection, never an answer in progress.
    assert all(re.search(r'"502, 200"', line) for line in retried), retried
    logs = "\n".join(web.log.read_text() for web in deployment.webs)
    assert not re.search(r"Traceback|ERROR|graceful shutdown exceeded", logs), logs
