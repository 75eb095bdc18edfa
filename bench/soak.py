"""`make soak`: the real processes at half the peak /track rate for 10 minutes, with dashboards.

Starts what `make bench` starts (bench/stack.py: the Procfile's `web` with production
settings and WEB_CONCURRENCY = cores, and the `scheduler`, in a database and key prefix of
their own) against a redis-server of its own (so its memory can be measured and nobody
else's keys or tests disturb it; `--shared-redis` uses REDIS_URL instead). Then:

    load        POST /track at a constant rate (bench/loadgen.py, open loop): half the
                peak of bench/results/latest.json (`ingest_c32`), or half of a short wrk
                run when there is none (`--measure-peak` forces it), or `--rate`
    dashboards  SOCKETS websockets on /live spread over SOCKET_TENANTS tenants, each
                reading every frame; those tenants get HOT_SHARE of the events, so the
                sockets see a steady stream of updates
    memory      resident memory (RSS) and CPU time of every process (uvicorn supervisor,
                each web worker, scheduler, private redis-server), Redis used_memory and
                the raw events waiting in the streams, every SAMPLE_EVERY seconds
    at the end  the load stops; the scheduler is left to drain and flush; then the sums of
                `daily_rollups` (every counter column, and per watched tenant), the raw
                `events` rows, GET /today of the watched tenants and the last frame of every
                dashboard are compared with what was answered 200

Everything is measured against a baseline taken just before the load starts (non-zero only
when a peak was measured first). The CPU of each process, of this database's Postgres
backends and of the rest of the machine (other people's work on a shared box) is recorded
too, so a dip in the rate can be told apart from a slower service.

Writes bench/results/soak.json, prints a summary and the tables of the Soak section of
docs/performance.md; exits 1 when the counts disagree, when anything but 200 came back (or
nothing), when a dashboard reconnected or fell behind, when a process of the service grew by
more than `--flat-mb` over the last half, or when the achieved rate was under 97% of the target.

    .venv/bin/python bench/soak.py [--duration 600] [--rate R] [--sockets 200]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import (  # noqa: E402
    RESULTS,
    Stack,
    children,
    cmdline,
    cpu_seconds,
    ensure_wrk,
    rss_mb,
    run_wrk,
)
from app.accounts.tokens import create_token  # noqa: E402
from realtime.event_types import COUNTER_OF  # noqa: E402
from realtime.keys import SHARDS, Keys  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

ROLLUP_COLUMNS = ("events", *COUNTER_OF.values(), "time_on_page_ms")
# What a dashboard frame shows for each event type (time_on_page is not in the frame).
LIVE_FIELD = {"pageview": "pageviews_today", "click_whatsapp": "whatsapp_clicks",
              "click_call": "call_clicks", "click_toggle_currency": "currency_toggles",
              "qr_scan": "qr_scans", "product_click": "products_viewed"}
TODAY_FIELD = {"click_whatsapp": "whatsapp_clicks", "qr_scan": "qr_scans",
               "product_click": "products_viewed"}


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- rate ----------------------------------------------------------------------------------


def recorded_peak() -> float | None:
    try:
        results = json.loads((RESULTS / "latest.json").read_text())
        return float(results["ingest_c32"]["track"]["rps"])
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return None


def measure_peak(stack: Stack, tenants: int, seconds: int) -> float:
    """/track req/s at c=32 with bench/track.lua, as `make bench` measures it."""
    wrk = ensure_wrk()
    env = {"BENCH_TENANTS": str(tenants), "BENCH_FIRST_TENANT": str(stack.first_tenant),
           "BENCH_VISITORS": "100000"}
    return run_wrk(wrk, stack.url("web"), ROOT / "bench" / "track.lua", 32, seconds, env)["rps"]


# -- dashboards ----------------------------------------------------------------------------


class Dashboard:
    """One websocket on /live that reads every frame and reconnects like the dashboard does."""

    def __init__(self, url: str, token: str, tenant: int) -> None:
        self.url, self.token, self.tenant = url, token, tenant
        self.frames: collections.Counter[str] = collections.Counter()
        self.closes: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.connects = 0
        self.open = False
        self.baseline: dict | None = None  # the first snapshot's data
        self.last: dict | None = None
        self.last_at = 0.0
        self.max_gap = 0.0  # longest silence (no snapshot or update) while counting
        self.counting = False
        self.connected = asyncio.Event()
        self.stopping = False

    async def run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        backoff = 0.5
        while not self.stopping:
            try:
                async with connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
                                   open_timeout=20, max_queue=None) as ws:
                    self.connects += 1
                    self.open = True
                    backoff = 0.5
                    try:
                        async for message in ws:
                            self.frame(orjson.loads(message))
                    finally:
                        self.open = False
                    code = ws.close_code
                self.closes[str(code)] += 1
            except ConnectionClosed as closed:
                self.closes[str(closed.rcvd.code if closed.rcvd else "none")] += 1
            except (OSError, TimeoutError, InvalidHandshake) as error:
                self.errors[type(error).__name__] += 1
            if self.stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)

    def frame(self, frame: dict) -> None:
        kind = frame.get("type", "?")
        self.frames[kind] += 1
        if kind not in ("snapshot", "update"):
            return
        now = time.monotonic()
        if self.baseline is None:
            self.baseline = frame["data"]
            self.connected.set()
        if self.counting and self.last_at:
            self.max_gap = max(self.max_gap, now - self.last_at)
        self.last, self.last_at = frame["data"], now

    def behind(self, expected: dict[str, int]) -> dict[str, tuple[int, int]]:
        """Fields whose last frame does not show the baseline plus what was accepted."""
        if self.last is None or self.baseline is None:
            return {"no frame": (0, 0)}
        wrong = {}
        for kind, field in LIVE_FIELD.items():
            want = self.baseline[field] + expected.get(kind, 0)
            if self.last[field] != want:
                wrong[field] = (self.last[field], want)
        return wrong


# -- measurements --------------------------------------------------------------------------


class Processes:
    """The pids under test, labelled; web workers are looked up again at every sample."""

    def __init__(self, stack: Stack, redis: RedisServer | None, conn: asyncpg.Connection) -> None:
        self.stack, self.redis, self.conn = stack, redis, conn
        self.worker_pids: list[list[int]] = []

    def current(self) -> dict[str, int]:
        web = self.stack.processes["web"].pid
        labelled = {"web supervisor": web}
        workers = []
        for pid in children(web):
            line = cmdline(pid)
            if "resource_tracker" in line:
                labelled["web resource tracker"] = pid
            else:
                workers.append(pid)
        for n, pid in enumerate(sorted(workers), 1):
            labelled[f"web worker {n}"] = pid
        self.worker_pids.append(sorted(workers))
        labelled["scheduler"] = self.stack.processes["scheduler"].pid
        if self.redis is not None and self.redis.process is not None:
            labelled["redis-server"] = self.redis.process.pid
        return labelled


async def sample(t: float, procs: Processes, redis, keys: Keys, dashboards: list[Dashboard],
                 private_redis: bool, clients: dict[str, int]) -> dict:
    pids = procs.current()
    backends = []
    with contextlib.suppress(Exception):  # the Postgres backends serving this run's database
        backends = [r["pid"] for r in await procs.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            procs.stack.db)]
    busy, total = system_cpu()
    row = {"t": round(t, 1),
           "rss_mb": {label: round(rss_mb(pid), 1) for label, pid in pids.items()},
           "cpu_s": {label: round(cpu_seconds(pid), 2) for label, pid in pids.items()},
           "client_cpu_s": {label: round(cpu_seconds(pid), 2) for label, pid in clients.items()},
           "system_jiffies": [busy, total],
           "postgres_cpu_s": {str(pid): cpu_seconds(pid) for pid in backends},
           "pids": pids}
    try:
        pipe = redis.pipeline(transaction=False)
        for shard in range(SHARDS):
            pipe.xlen(keys.events(shard))
        row["stream_backlog"] = sum(await pipe.execute())
        if private_redis:
            info = await redis.info("memory")
            row["redis_used_memory_mb"] = round(info["used_memory"] / 2**20, 1)
    except Exception as error:  # a sample must never end the soak
        row["redis_error"] = repr(error)
    row["sockets_open"] = sum(1 for d in dashboards if d.open)
    row["updates_so_far"] = sum(d.frames["update"] for d in dashboards)
    return row


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares MB per minute."""
    if len(points) < 2:
        return None
    ts = [t for t, _ in points]
    mean_t = statistics.fmean(ts)
    mean_v = statistics.fmean(v for _, v in points)
    denom = sum((t - mean_t) ** 2 for t in ts)
    if not denom:
        return None
    return round(60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / denom, 3)


def memory_report(samples: list[dict], after: dict | None, duration: float, flat_mb: float) -> dict:
    labels = list(dict.fromkeys(label for s in samples for label in s["rss_mb"]))
    if after:
        labels += [label for label in after["rss_mb"] if label not in labels]
    middle = min(samples, key=lambda s: abs(s["t"] - duration / 2))
    report = {}
    for label in labels:
        series = [(s["t"], s["rss_mb"][label]) for s in samples if label in s["rss_mb"]]
        if not series:
            continue
        start, end = series[0][1], series[-1][1]
        mid = middle["rss_mb"].get(label, start)
        last_half = [(t, v) for t, v in series if t >= middle["t"]]
        growth = round(end - mid, 1)
        report[label] = {
            "start_mb": start, "middle_mb": mid, "end_mb": end,
            "after_settle_mb": after["rss_mb"].get(label) if after else None,
            "peak_mb": max(v for _, v in series),
            "last_half_growth_mb": growth,
            "last_half_slope_mb_per_min": slope(last_half),
            "slope_mb_per_min": slope(series),
            "flat": abs(growth) <= flat_mb,
        }
    used = [(s["t"], s["redis_used_memory_mb"]) for s in samples if "redis_used_memory_mb" in s]
    if used:
        report["redis used_memory (INFO)"] = {
            "start_mb": used[0][1], "middle_mb": middle.get("redis_used_memory_mb"),
            "end_mb": used[-1][1], "after_settle_mb": after.get("redis_used_memory_mb") if after else None,
            "peak_mb": max(v for _, v in used),
            "last_half_growth_mb": round(used[-1][1] - (middle.get("redis_used_memory_mb") or used[0][1]), 1),
            "last_half_slope_mb_per_min": slope([p for p in used if p[0] >= middle["t"]]),
            "slope_mb_per_min": slope(used),
            "flat": None,  # data, not a process: reported, not judged
        }
    return report


def cpu_report(samples: list[dict], final: dict) -> dict:
    """CPU over the load, in % of one core per process, and the machine's busy share."""
    first, last = samples[0], samples[-1]
    seconds = last["t"] - first["t"]
    if seconds <= 0:
        return {}
    report: dict = {"percent_of_one_core": {}}
    for kind in ("cpu_s", "client_cpu_s"):
        for label, end in last[kind].items():
            start = first[kind].get(label, 0.0)
            report["percent_of_one_core"][label] = round(100 * (end - start) / seconds, 1)
    # Postgres backends come and go with the pools: each one's growth while it was seen.
    first_seen: dict[str, float] = {}
    latest: dict[str, float] = {}
    for i, row in enumerate(samples):
        for pid, cpu in row.get("postgres_cpu_s", {}).items():
            first_seen.setdefault(pid, cpu if i == 0 else 0.0)
            latest[pid] = max(latest.get(pid, 0.0), cpu)
    report["percent_of_one_core"]["postgres (this database's backends)"] = round(
        100 * sum(latest[p] - first_seen[p] for p in latest) / seconds, 1)
    # The generator has exited by the last sample: its own count.
    report["percent_of_one_core"]["load generator"] = round(100 * final["cpu_seconds"] / final["seconds"], 1)
    busy = [(b - a) for a, b in zip(first["system_jiffies"], last["system_jiffies"])]
    report["machine_busy_percent"] = round(100 * busy[0] / busy[1], 1) if busy[1] else None
    series = []
    for a, b in zip(samples, samples[1:]):
        d_busy = b["system_jiffies"][0] - a["system_jiffies"][0]
        d_total = b["system_jiffies"][1] - a["system_jiffies"][1]
        series.append(round(100 * d_busy / d_total, 1) if d_total else None)
    report["machine_busy_percent_by_sample"] = series
    # What the rest of the machine (other people's work, Postgres's own background processes,
    # the kernel) took, in % of one core: the machine's busy time minus this run's processes.
    cores = os.cpu_count() or 1
    others = []
    for a, b in zip(samples, samples[1:]):
        dt_s = b["t"] - a["t"]
        d_busy = b["system_jiffies"][0] - a["system_jiffies"][0]
        d_total = b["system_jiffies"][1] - a["system_jiffies"][1]
        if dt_s <= 0 or not d_total:
            others.append(None)
            continue
        ours = sum(max(0.0, b[k][label] - a[k].get(label, 0.0)) for k in ("cpu_s", "client_cpu_s")
                   for label in b[k] if b[k][label])
        ours += sum(max(0.0, cpu - a.get("postgres_cpu_s", {}).get(pid, 0.0))
                    for pid, cpu in b.get("postgres_cpu_s", {}).items())
        others.append(round(100 * cores * d_busy / d_total - 100 * ours / dt_s, 1))
    report["rest_of_machine_percent_of_one_core_by_sample"] = others
    return report


async def rollup_sums(conn: asyncpg.Connection, hot: list[int]) -> dict:
    total = await conn.fetchrow(
        "SELECT " + ", ".join(f"coalesce(sum({c}), 0)::bigint AS {c}" for c in ROLLUP_COLUMNS)
        + " FROM daily_rollups")
    per_tenant = await conn.fetch(
        "SELECT tenant_id, " + ", ".join(f"coalesce(sum({c}), 0)::bigint AS {c}" for c in ROLLUP_COLUMNS)
        + " FROM daily_rollups WHERE tenant_id = any($1::bigint[]) GROUP BY tenant_id", hot)
    raw = await conn.fetchval("SELECT count(*) FROM events")
    return {"total": dict(total), "raw_events": raw,
            "per_tenant": {str(r["tenant_id"]): {c: r[c] for c in ROLLUP_COLUMNS} for r in per_tenant}}


def delta(now: dict, base: dict) -> dict:
    return {k: now.get(k, 0) - base.get(k, 0) for k in now}


def expected_columns(by_type: dict[str, int], time_ms: int | None) -> dict[str, int]:
    expected = {"events": sum(by_type.values())}
    for kind, column in COUNTER_OF.items():
        expected[column] = by_type.get(kind, 0)
    if time_ms is not None:
        expected["time_on_page_ms"] = time_ms
    return expected


async def settle(conn: asyncpg.Connection, redis, keys: Keys, hot: list[int], base: dict,
                 accepted: int | None, timeout: float, quiet: float) -> tuple[dict, float]:
    """Waits until the rollups show `accepted` events past `base` (or nothing has moved for
    `quiet` seconds with the streams empty), at most `timeout` seconds."""
    started = time.monotonic()
    last, since = None, time.monotonic()
    while True:
        sums = await rollup_sums(conn, hot)
        pipe = redis.pipeline(transaction=False)
        for shard in range(SHARDS):
            pipe.xlen(keys.events(shard))
        backlog = sum(await pipe.execute())
        events = sums["total"]["events"] - base["total"]["events"]
        raw = sums["raw_events"] - base["raw_events"]
        key = (events, raw, backlog)
        if key != last:
            last, since = key, time.monotonic()
        elapsed = time.monotonic() - started
        if accepted is not None and events == accepted and raw == accepted and backlog == 0:
            return sums, elapsed
        # Otherwise: nothing left in the streams, every stored event in the rollups, and no
        # change for `quiet` seconds (the counts will not move any more).
        if backlog == 0 and events == raw and time.monotonic() - since >= quiet:
            return sums, elapsed
        if elapsed >= timeout:
            return sums, elapsed
        await asyncio.sleep(1)


async def today_numbers(url: str, tokens: dict[int, str]) -> dict[int, dict]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        out = {}
        for tenant, token in tokens.items():
            response = await http.get(f"/api/analytics/{tenant}/today",
                                      headers={"Authorization": f"Bearer {token}"})
            out[tenant] = response.json() if response.status_code == 200 else {"status": response.status_code}
        return out


def script_names() -> dict[str, str]:
    import hashlib

    folder = ROOT / "realtime" / "scripts"
    return {hashlib.sha1(path.read_bytes()).hexdigest(): path.stem for path in folder.glob("*.lua")}


async def slowlog(redis, t0_wall: float) -> dict:
    """Redis commands slower than 10 ms during the load (private Redis only): what blocked it."""
    names = script_names()
    entries = await redis.slowlog_get(100_000)
    by_command: dict[str, dict] = {}
    longest = []
    for entry in entries:
        args = [a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in entry["command"].split()[:2]] \
            if isinstance(entry["command"], (bytes, str)) else []
        name = args[0].upper() if args else "?"
        if name in ("EVALSHA", "EVALSHA_RO") and len(args) > 1:
            name = f"EVALSHA {names.get(args[1].lower(), args[1][:8])}"
        row = by_command.setdefault(name, {"count": 0, "max_ms": 0.0, "total_ms": 0.0})
        ms = entry["duration"] / 1000
        row["count"] += 1
        row["max_ms"] = round(max(row["max_ms"], ms), 1)
        row["total_ms"] = round(row["total_ms"] + ms, 1)
        longest.append({"t": round(entry["start_time"] - t0_wall), "command": name, "ms": round(ms, 1)})
    longest.sort(key=lambda e: -e["ms"])
    return {"over_10ms": len(entries), "longest": longest[:8],
            "by_command": dict(sorted(by_command.items(), key=lambda kv: -kv[1]["total_ms"]))}


def log_problems(logs: Path) -> dict:
    found: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for path in sorted(logs.glob("*.log")):
        lines = [line.rstrip() for line in path.read_text(errors="replace").splitlines()
                 if re.search(r"\b(ERROR|CRITICAL|Traceback)\b|\bWARNING\b", line)]
        counts[path.stem] = len(lines)
        if lines:
            found[path.stem] = lines[:5]
    return {"lines_with_warning_or_error": counts, "first_lines": found, "directory": str(logs)}


def rounded(x: float | None, n: int = 1) -> float | None:
    return None if x is None else round(x, n)


# -- the run -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    workers = os.cpu_count() or 1
    redis_server = None if args.shared_redis else RedisServer().start()
    logs = Path(tempfile.mkdtemp(prefix="analytics-soak-"))
    stack = Stack(workers, redis_url=redis_server.url if redis_server else None, logs=logs)
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                     "machine": {"cores": os.cpu_count(), "web_workers": workers}}
    dashboards: list[Dashboard] = []
    tasks: list[asyncio.Task] = []
    from redis.asyncio import Redis

    redis = Redis.from_url(stack.env.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    keys = Keys(stack.env["ANALYTICS_KEY_PREFIX"])
    conn = None
    try:
        log(f"starting web ({workers} workers), scheduler, "
            f"{'private redis-server on port %d' % redis_server.port if redis_server else 'shared Redis'}; "
            f"{args.tenants} tenants")
        await stack.setup(args.tenants, bare=False)
        conn = await asyncpg.connect(stack.env["DATABASE_URL"])
        hot = [stack.first_tenant + i for i in range(args.socket_tenants)]

        # The rate: --rate, else half the recorded peak, else half a short wrk run.
        peak, source = None, None
        if args.rate:
            rate, source = args.rate, "--rate"
        else:
            peak = None if args.measure_peak else recorded_peak()
            source = "bench/results/latest.json ingest_c32.track.rps"
            if peak is None:
                log(f"measuring the peak: wrk c=32 for {args.peak_seconds} s")
                peak = measure_peak(stack, args.tenants, args.peak_seconds)
                source = f"wrk c=32, {args.peak_seconds} s, this run"
            rate = round(peak / 2, 1)
        log(f"rate {rate} req/s ({'half of peak %.0f from %s' % (peak, source) if peak else source})")

        tokens = {t: (await create_token(conn, t, label="soak"))[1] for t in hot}
        base_url = stack.url("web")
        ws_base = base_url.replace("http://", "ws://")
        # Whatever happened before the load (a wrk run) is flushed, then taken as the baseline.
        if source.startswith("wrk"):
            log("waiting for the scheduler to flush the wrk run")
            base, _ = await settle(conn, redis, keys, hot, {"total": {"events": 0}, "raw_events": 0},
                                   None, 120, quiet=2 * float(stack.env["FLUSH_INTERVAL_SECONDS"]))
        else:
            base = await rollup_sums(conn, hot)
        base_today = await today_numbers(base_url, tokens)

        log(f"connecting {args.sockets} dashboards over {len(hot)} tenants")
        for i in range(args.sockets):
            tenant = hot[i % len(hot)]
            dashboards.append(Dashboard(f"{ws_base}/api/analytics/{tenant}/live", tokens[tenant], tenant))
        for start in range(0, len(dashboards), 25):
            batch = dashboards[start:start + 25]
            tasks += [asyncio.create_task(d.run()) for d in batch]
            await asyncio.wait_for(asyncio.gather(*(d.connected.wait() for d in batch)), 60)
        for d in dashboards:
            d.counting = True
            d.last_at = time.monotonic()

        procs = Processes(stack, redis_server, conn)
        clients = {"dashboards (this process)": os.getpid()}
        samples: list[dict] = []
        loop = asyncio.get_running_loop()
        private = redis_server is not None
        argv = [sys.executable, str(ROOT / "bench" / "loadgen.py"), "--url", base_url,
                "--rate", str(rate), "--duration", str(args.duration),
                "--connections", str(args.connections), "--tenants", str(args.tenants),
                "--first-tenant", str(stack.first_tenant), "--hot-tenants", ",".join(map(str, hot)),
                "--hot-share", str(args.hot_share), "--report-every", str(args.sample_every)]
        log(f"load for {args.duration:.0f} s: {' '.join(argv[1:])}")
        if private:
            await redis.config_set("slowlog-log-slower-than", 10_000)
            await redis.config_set("slowlog-max-len", 100_000)
            await redis.slowlog_reset()
        t0, t0_wall = loop.time(), time.time()
        day0 = time.gmtime(t0_wall)[:3]  # the tenants' days are UTC days
        samples.append(await sample(0.0, procs, redis, keys, dashboards, private, clients))
        updates0 = samples[0]["updates_so_far"]
        updates_at_start = [d.frames["update"] for d in dashboards]
        gen = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
        clients["load generator"] = gen.pid
        windows: list[dict] = []
        final: dict | None = None

        # A sample each time the generator reports a window (every SAMPLE_EVERY seconds).
        async for raw in gen.stdout:
            line = json.loads(raw)
            if line["type"] != "window":
                final = line
                continue
            windows.append(line)
            row = await sample(loop.time() - t0, procs, redis, keys, dashboards, private, clients)
            samples.append(row)
            rss = ", ".join(f"{label.replace('web ', '')} {mb:.0f}" for label, mb in row["rss_mb"].items())
            log(f"t={line['t']:>4.0f}s {line['rate']:>6.0f}/s non-200 {line['answered'] - line['accepted']} "
                f"errors {sum(line['errors'].values())} backlog max {line['max_backlog']} "
                f"p99 {line['latency_from_due']['p99_ms']} ms | stream {row.get('stream_backlog')} "
                f"updates {row['updates_so_far'] - updates0} | RSS MB {rss}")
        await gen.wait()
        load_end = loop.time() - t0
        if samples[-1]["t"] < min(load_end, args.duration) - 2:
            samples.append(await sample(min(load_end, args.duration), procs, redis, keys, dashboards,
                                        private, clients))
        redis_slow = await slowlog(redis, t0_wall) if private else None
        if final is None:
            raise RuntimeError(f"the load generator exited with {gen.returncode} and no result")
        for d in dashboards:
            d.counting = False
        updates = [d.frames["update"] - n for d, n in zip(dashboards, updates_at_start)]
        log(f"load done: {final['answered']} answered in {final['seconds']} s "
            f"({final['achieved_rate']}/s), {final['accepted']} accepted; waiting for the flush")

        # The dashboards: each last frame shows the baseline plus what was accepted.
        hot_accepted = {int(t): c for t, c in final["accepted_hot"].items()}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not any(d.behind(hot_accepted[d.tenant]) for d in dashboards):
                break
            await asyncio.sleep(0.5)
        behind = {i: d.behind(hot_accepted[d.tenant]) for i, d in enumerate(dashboards)}
        behind = {i: w for i, w in behind.items() if w}

        # The scheduler drains and flushes on its own interval.
        accepted = final["accepted"]
        sums, settle_s = await settle(conn, redis, keys, hot, base, accepted, args.settle_timeout,
                                      quiet=3 * float(stack.env["FLUSH_INTERVAL_SECONDS"]))
        after = await sample(loop.time() - t0, procs, redis, keys, dashboards, private, {})
        got = delta(sums["total"], base["total"])
        want = expected_columns(final["accepted_by_type"], final["accepted_time_on_page_ms"])
        per_tenant_wrong = {}
        for tenant in hot:
            now_t = sums["per_tenant"].get(str(tenant), {})
            base_t = base["per_tenant"].get(str(tenant), {})
            got_t = {c: now_t.get(c, 0) - base_t.get(c, 0) for c in ROLLUP_COLUMNS if c != "time_on_page_ms"}
            want_t = expected_columns(hot_accepted[tenant], None)
            if got_t != want_t:
                per_tenant_wrong[tenant] = {"rollups": got_t, "accepted": want_t}
        today = await today_numbers(base_url, tokens)
        # Across a UTC midnight the live numbers and /today start again from zero: those two
        # checks are then skipped (the rollups still hold every day).
        same_day = time.gmtime()[:3] == day0
        if not same_day:
            behind = {}
            log("the UTC day changed during the run: live and /today checks skipped")
        today_wrong = {}
        for tenant in hot:
            for kind, field in TODAY_FIELD.items():
                shown = today[tenant].get(field, 0) - base_today[tenant].get(field, 0)
                if same_day and shown != hot_accepted[tenant].get(kind, 0):
                    today_wrong.setdefault(tenant, {})[field] = (shown, hot_accepted[tenant].get(kind, 0))

        for d in dashboards:
            d.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        # -- the report --------------------------------------------------------------------
        rates = [w["rate"] for w in windows if w["seconds"] and w["t"] <= final["seconds"] + 0.5]
        statuses = {k: v for k, v in final["statuses"].items() if k != "200"}
        memory = memory_report(samples, after, min(load_end, args.duration), args.flat_mb)
        # Redis holds data that legitimately grows (the day's sketches, the minute sketches of
        # the last 6 minutes): its memory is reported, the processes of the service are judged.
        judged = {k: v for k, v in memory.items() if v["flat"] is not None and not k.startswith("redis")}
        counts_equal = got == want and sums["raw_events"] - base["raw_events"] == accepted
        results.update({
            "settings": {
                "duration_s": args.duration, "target_rate": rate, "rate_source": source,
                "peak_rps": peak, "sockets": args.sockets, "socket_tenants": len(hot),
                "hot_share": args.hot_share, "tenants": args.tenants,
                "connections": args.connections, "sample_every_s": args.sample_every,
                "redis": "private redis-server" if redis_server else "shared (REDIS_URL)",
                "flush_interval_s": float(stack.env["FLUSH_INTERVAL_SECONDS"]),
                "flat_mb": args.flat_mb,
            },
            "load": {
                "target_rate": rate, "achieved_rate": final["achieved_rate"],
                "accepted_rate": final["accepted_rate"], "seconds": final["seconds"],
                "seconds_until_last_answer": final["seconds_until_last_answer"],
                "due": final["due"], "sent": final["sent"], "answered": final["answered"],
                "accepted": accepted, "non_200": final["non_200"], "non_200_statuses": statuses,
                "errors": final["errors"], "unknown_outcome": final["unknown_outcome"],
                "never_sent": final["never_sent"], "max_backlog": final["max_backlog"],
                "connections_opened": final["connects"],
                "window_rate": {"min": min(rates, default=None), "max": max(rates, default=None),
                                "mean": rounded(statistics.fmean(rates)) if rates else None,
                                "stdev": rounded(statistics.pstdev(rates)) if rates else None},
                "second_rate": {"min": min(final["answered_by_second"][1:-1], default=None),
                                "max": max(final["answered_by_second"][1:-1], default=None)},
                "latency_from_due": final["latency_from_due"],
                "latency_from_send": final["latency_from_send"],
                "generator_cpu_s": final["cpu_seconds"],
                "non_200_samples": final["non_200_samples"],
            },
            "rollups": {
                "accepted": accepted, "rollup_events": got["events"],
                # > 0: events the server counted although it answered something else (or
                # nothing): at most non_200 + unknown_outcome.
                "rollups_minus_accepted": got["events"] - accepted,
                "raw_events": sums["raw_events"] - base["raw_events"],
                "equal": counts_equal, "columns": {c: {"rollups": got[c], "accepted": want[c]}
                                                   for c in ROLLUP_COLUMNS},
                "watched_tenants_wrong": per_tenant_wrong, "get_today_wrong": today_wrong,
                "settle_s": round(settle_s, 1),
            },
            "live": {
                "sockets": len(dashboards), "tenants": len(hot),
                "updates": sum(updates),  # during the load
                "snapshots": sum(d.frames["snapshot"] for d in dashboards),
                "pings": sum(d.frames["ping"] for d in dashboards),
                "updates_per_socket": {"min": min(updates), "median": statistics.median(updates),
                                       "max": max(updates)},
                "updates_per_socket_per_s": round(statistics.fmean(updates) / max(final["seconds"], 1), 2),
                "max_silence_s": round(max(d.max_gap for d in dashboards), 2),
                "reconnects": sum(d.connects - 1 for d in dashboards),
                "closes": dict(sum((d.closes for d in dashboards), collections.Counter())),
                "connect_errors": dict(sum((d.errors for d in dashboards), collections.Counter())),
                "last_frame_matches_accepted": len(dashboards) - len(behind) if same_day else None,
                "behind_examples": {str(i): w for i, w in list(behind.items())[:5]},
            },
            "memory": memory,
            "redis_slowlog": redis_slow,
            "cpu": cpu_report(samples, final),
            "per_second": {"answered": final["answered_by_second"], "backlog": final["backlog_by_second"]},
            "worker_pids_changed": len({tuple(p) for p in procs.worker_pids}) > 1,
            "windows": [{k: w[k] for k in ("t", "rate", "accepted", "backlog", "errors", "statuses")}
                        | {"p99_ms": w["latency_from_due"]["p99_ms"]} for w in windows],
            "samples": samples + [after | {"after_settle": True}],
        })
        for s in results["samples"]:
            s.pop("pids", None)
            s.pop("system_jiffies", None)
            s.pop("postgres_cpu_s", None)
        results["logs"] = log_problems(logs)
        results["verdict"] = {
            "rollups_equal_accepted": counts_equal and not per_tenant_wrong and not today_wrong,
            "no_errors": (final["non_200"] == 0 and not final["errors"] and final["never_sent"] == 0
                          and final["unknown_outcome"] == 0),
            "dashboards_current": not behind and results["live"]["reconnects"] == 0,
            "memory_flat": all(v["flat"] for v in judged.values()),
            "rate_held": final["achieved_rate"] >= 0.97 * rate,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print_summary(results)
        print("\nFor the Soak section of docs/performance.md:\n")
        print(markdown(results))
        print()
        log(f"wrote {out}")
        return 0 if all(results["verdict"].values()) else 1
    finally:
        for d in dashboards:
            d.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if conn is not None:
            await conn.close()
        await redis.aclose()
        await stack.teardown()
        if redis_server is not None:
            redis_server.close()


def print_summary(r: dict) -> None:
    load, roll, live = r["load"], r["rollups"], r["live"]
    print()
    print(f"rate      target {load['target_rate']}/s for {load['seconds']:.0f} s, achieved {load['achieved_rate']}/s "
          f"(last answer at {load['seconds_until_last_answer']:.1f} s) "
          f"(10 s windows {load['window_rate']['min']}-{load['window_rate']['max']}, "
          f"1 s {load['second_rate']['min']}-{load['second_rate']['max']}), max backlog {load['max_backlog']}")
    print(f"latency   from due p50 {load['latency_from_due']['p50_ms']} p99 {load['latency_from_due']['p99_ms']} "
          f"max {load['latency_from_due']['max_ms']} ms; from send p50 {load['latency_from_send']['p50_ms']} "
          f"p99 {load['latency_from_send']['p99_ms']} ms")
    print(f"answers   {load['answered']} answered, {load['accepted']} accepted (200), "
          f"{load['non_200']} non-200 {load['non_200_statuses'] or ''}, errors {load['errors'] or 0}, "
          f"unknown outcome {load['unknown_outcome']}, never sent {load['never_sent']}")
    print(f"rollups   {roll['rollup_events']} in daily_rollups, {roll['raw_events']} raw events, "
          f"{roll['accepted']} accepted: {'EQUAL' if roll['equal'] else 'DIFFERENT'} "
          f"(settled {roll['settle_s']} s after the load)"
          + (f"; {roll['rollups_minus_accepted']:+} counted beyond the 200s "
             f"({load['non_200']} non-200, {load['unknown_outcome']} unanswered)"
             if roll["rollups_minus_accepted"] else ""))
    print(f"live      {live['sockets']} sockets, {live['updates']} updates "
          f"({live['updates_per_socket_per_s']}/s per socket), longest silence {live['max_silence_s']} s, "
          f"reconnects {live['reconnects']}, last frame current on "
          f"{live['last_frame_matches_accepted']}/{live['sockets']}")
    print("memory    RSS MB: start / middle / end (after settle)  last-half growth, slope MB/min")
    for label, m in r["memory"].items():
        print(f"          {label:<26} {m['start_mb']} / {m['middle_mb']} / {m['end_mb']} "
              f"({m['after_settle_mb']})  {m['last_half_growth_mb']:+} MB, "
              f"{m['last_half_slope_mb_per_min']} MB/min"
              + ("" if m["flat"] is None else "  flat" if m["flat"] else "  GROWING"))
    slow = r.get("redis_slowlog")
    if slow:
        print(f"redis     {slow['over_10ms']} commands over 10 ms: "
              + ", ".join(f"{k} x{v['count']} (max {v['max_ms']} ms)" for k, v in list(slow["by_command"].items())[:4]))
    cpu = r.get("cpu", {})
    if cpu:
        print(f"cpu       machine {cpu['machine_busy_percent']}% busy (of all cores); % of one core: "
              + ", ".join(f"{k} {v}" for k, v in cpu["percent_of_one_core"].items()))
        print(f"          rest of the machine by sample (% of one core): "
              f"{cpu['rest_of_machine_percent_of_one_core_by_sample']}")
    print(f"verdict   {r['verdict']}")


def markdown(r: dict) -> str:
    """The two tables of the Soak section of docs/performance.md, filled in."""
    st, load, roll, live = r["settings"], r["load"], r["rollups"], r["live"]
    lat = load["latency_from_due"]
    lines = [
        f"Run of {r['started']}: {st['duration_s']:.0f} s, {r['machine']['cores']} cores, "
        f"{st['sockets']} dashboards on {st['socket_tenants']} tenants.",
        "",
        "| what | target | measured |",
        "|---|---|---|",
        f"| `/track` rate achieved (10 s windows min-max) | {st['target_rate']:.0f} req/s "
        + (f"(half of {st['peak_rps']:.0f}) | " if st["peak_rps"] else "(--rate) | ")
        + f"{load['achieved_rate']:.0f} req/s " + (
            f"({load['window_rate']['min']:.0f}-{load['window_rate']['max']:.0f}) |"
            if load["window_rate"]["min"] is not None else "|"),
        f"| latency from due time p50 / p99 / max | | {lat['p50_ms']} / {lat['p99_ms']} / {lat['max_ms']} ms |",
        f"| non-200 answers / errors | 0 / 0 | {load['non_200']} / "
        f"{sum(load['errors'].values()) + load['unknown_outcome'] + load['never_sent']} |",
        f"| rollups (`daily_rollups` events) vs accepted (200) | equal | {roll['rollup_events']} vs "
        f"{roll['accepted']}: {'equal' if roll['equal'] else 'DIFFERENT'} |",
        f"| dashboards: updates received, reconnects, last frame current | 0 reconnects, all current | "
        f"{live['updates']} ({live['updates_per_socket_per_s']}/s per socket), {live['reconnects']}, "
        f"{live['last_frame_matches_accepted']}/{live['sockets']} |",
        "",
        "| process | RSS start MB | middle MB | end MB | last-half growth MB | last-half slope MB/min |",
        "|---|---|---|---|---|---|",
    ]
    for label, m in r["memory"].items():
        lines.append(f"| {label} | {m['start_mb']} | {m['middle_mb']} | {m['end_mb']} | "
                     f"{m['last_half_growth_mb']:+} | {m['last_half_slope_mb_per_min']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, help="requests per second (default: half the peak)")
    parser.add_argument("--measure-peak", action="store_true",
                        help="measure the peak with wrk even when latest.json has one")
    parser.add_argument("--peak-seconds", type=int, default=10)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--socket-tenants", type=int, default=10)
    parser.add_argument("--hot-share", type=float, default=0.1,
                        help="share of the events sent to the dashboards' tenants")
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=64, help="load generator connections")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--flat-mb", type=float, default=5.0,
                        help="largest last-half RSS growth of a process still called flat")
    parser.add_argument("--settle-timeout", type=float, default=180)
    parser.add_argument("--shared-redis", action="store_true", help="use REDIS_URL, not a private redis-server")
    parser.add_argument("--out", default=str(RESULTS / "soak.json"))
    args = parser.parse_args()
    if args.socket_tenants < 1 or args.sockets < 1:
        parser.error("--sockets and --socket-tenants must be at least 1")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
