"""The load of `--peak`: wrk drives /track closed loop (bench/soak/peak.lua), each connection
sending its next request as soon as the last one is answered, so the rate is whatever the
service sustains: its peak, on this machine, while the dashboards and the sampling run.

wrk counts every request it sends (by event type, and per watched tenant) and every answer (by
status); after the duration it sends nothing more, and once the last answer is in the soak
stops it. When every request sent was answered 200, what was sent per event type is exactly
what was accepted, and the rollups are checked against it as against bench/loadgen.py's count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
from collections.abc import Awaitable, Callable

from bench.soak.reporting import log
from bench.stack import ROOT, cpu_seconds, ensure_wrk

SCRIPT = ROOT / "bench" / "soak" / "peak.lua"
TRACK = ROOT / "bench" / "track.lua"
GRACE = 30  # seconds wrk may wait past the duration for answers still in flight
LATENCY = ("p50", "p99", "p999", "max")


async def drive(url: str, args, first_tenant: int, hot: list[int], t0: float,
                take_sample: Callable[[float], Awaitable[dict]], clients: dict[str, int],
                ) -> tuple[dict, list[dict], list[dict]]:
    """Runs wrk for args.duration (whole seconds) with a sample every args.sample_every;
    (the final line in bench/loadgen.py's shape, the windows, the samples)."""
    loop = asyncio.get_running_loop()
    duration = math.ceil(args.duration)
    env = {**os.environ, "BENCH_TRACK_LUA": str(TRACK), "BENCH_TENANTS": str(args.tenants),
           "BENCH_FIRST_TENANT": str(first_tenant), "BENCH_VISITORS": "100000",
           "BENCH_HOT_TENANTS": ",".join(map(str, hot)), "BENCH_HOT_SHARE": str(args.hot_share),
           "BENCH_DURATION": str(duration)}
    argv = [ensure_wrk(), "-t1", f"-c{args.connections}", f"-d{duration + GRACE}s",
            "--timeout", "10s", "-s", str(SCRIPT), url]
    log(f"peak load for {duration} s: wrk closed loop, {args.connections} connections, "
        f"{args.hot_share:.0%} of the events to {len(hot)} watched tenants")
    samples = [await take_sample(loop.time() - t0)]
    started = loop.time()
    wrk = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, env=env,
                                               cwd=ROOT)
    clients["load generator (wrk)"] = wrk.pid
    latest: dict = {"answered": 0, "accepted": 0, "sent": 0}
    windows: list[dict] = []
    sampler = asyncio.create_task(
        sample_windows(args.sample_every, t0, latest, windows, samples, take_sample))
    final = drained_at = None
    cpu = 0.0
    try:
        async for raw in wrk.stdout:
            if not raw.startswith(b"{"):
                continue  # wrk's own summary
            line = json.loads(raw)
            if line["type"] == "second":
                latest.update(line)
            elif line["type"] == "drained":
                drained_at = loop.time()
                latest.update(line)
                # Every answer is in: SIGINT cuts wrk's -d sleep short, and done() reports.
                wrk.send_signal(signal.SIGINT)
            else:
                cpu = cpu_seconds(wrk.pid)
                final = line
        await wrk.wait()
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        if wrk.returncode is None:
            wrk.kill()
    if final is None:
        raise RuntimeError(f"wrk exited with {wrk.returncode} and no result")
    until_last = (drained_at or loop.time()) - started
    if samples[-1]["t"] < duration - 2:
        samples.append(await take_sample(min(loop.time() - t0, duration)))
    return (shaped(final, duration, until_last, cpu, args.connections, hot), windows,
            samples)


async def sample_windows(every: float, t0: float, latest: dict, windows: list[dict],
                         samples: list[dict], take_sample) -> None:
    """Every `every` seconds: a sample, and a window of what wrk reported meanwhile."""
    loop = asyncio.get_running_loop()
    before = {"answered": 0, "accepted": 0, "sent": 0}
    k = 1
    while True:
        await asyncio.sleep(max(0.0, t0 + k * every - loop.time()))
        now = {key: latest[key] for key in before}
        window = {"type": "window", "t": round(loop.time() - t0, 1), "seconds": every,
                  "rate": round((now["answered"] - before["answered"]) / every, 1),
                  **{key: now[key] - before[key] for key in before}}
        before = now
        windows.append(window)
        samples.append(await take_sample(loop.time() - t0))
        row = samples[-1]
        log(f"t={window['t']:>4.0f}s {window['rate']:>6.0f}/s "
            f"non-200 {window['answered'] - window['accepted']} "
            f"| stream {row.get('stream_backlog')} | RSS MB "
            + ", ".join(f"{label.replace('web ', '')} {mb:.0f}"
                        for label, mb in row["rss_mb"].items()))
        k += 1


def hot_counts(flat: dict[str, int], hot: list[int]) -> dict[str, dict[str, int]]:
    """{"tenant:type": n} as {"tenant": {"type": n}}, every watched tenant present."""
    out: dict[str, dict[str, int]] = {str(t): {} for t in hot}
    for key, n in flat.items():
        tenant, kind = key.split(":")
        out[tenant][kind] = int(n)
    return out


def shaped(line: dict, duration: float, until_last: float, cpu: float,
           connections: int, hot: list[int]) -> dict:
    """wrk's final line in the shape of bench/loadgen.py's, for the checks and the reports."""
    statuses = {k: int(v) for k, v in line["statuses"].items()}
    sent, answered, accepted = int(line["sent"]), int(line["answered"]), int(line["accepted"])
    by_second = {int(k): int(v) for k, v in line["answered_by_second"].items()}
    latency = {f"{q}_ms": round(line["latency_ms"][q], 2) for q in LATENCY}
    return {
        "type": "final", "mode": "peak (wrk, closed loop)", "target_rate": None,
        "connections": connections, "seconds": duration,
        "seconds_until_last_answer": round(until_last, 2),
        "due": None, "sent": sent, "answered": answered,
        "achieved_rate": round(answered / until_last, 1) if until_last else 0.0,
        "accepted": accepted,
        "accepted_rate": round(accepted / until_last, 1) if until_last else 0.0,
        "statuses": statuses, "non_200": answered - accepted,
        # wrk's "status" errors are the non-2xx answers, counted above.
        "errors": {k: int(v) for k, v in line["errors"].items() if v and k != "status"},
        # Sent and never answered: the server may or may not have stored them.
        "unknown_outcome": sent - answered, "never_sent": 0,
        "max_backlog": None, "connects": None,
        "latency_from_due": None, "latency_from_send": latency,
        # What was sent; equal to what was accepted when every request sent was (the
        # verdict's no_errors), and then the rollups must show exactly this.
        "accepted_by_type": {k: int(v) for k, v in line["sent_by_type"].items()},
        "accepted_time_on_page_ms": 0,  # bench/track.lua's mix sends no time_on_page
        "accepted_hot": hot_counts(line["sent_hot"], hot),
        "non_200_samples": [],
        "answered_by_second": [by_second.get(i, 0) for i in range(max(by_second, default=-1) + 1)],
        "backlog_by_second": [],
        "cpu_seconds": round(cpu, 1),
    }
