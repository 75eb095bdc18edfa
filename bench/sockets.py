"""Idle dashboards: what an open websocket costs a `web` worker, per uvicorn websocket option.

Runs inside `make bench`'s Stack (its database and token). Each variant is a server of ONE
worker started afresh; its resident memory is read with WARM sockets open, then again once
COUNT more idle dashboards of one tenant are open (each past its snapshot, opened by a client
that offers permessage-deflate, as browsers do): the difference per socket. Variants take
turns within each round; the figure is the median of the rounds. Last, MOST dashboards on
`analytics serve` itself: the worker's whole resident memory. With the sockets open, UPDATES
events one throttle period apart each reach every socket: the worker's CPU per frame sent.

    serve           `analytics serve` as the Procfile runs it: websockets-sansio, no deflate
    sansio+deflate  the same with permessage-deflate accepted (uvicorn's default)
    wsproto         uvicorn --ws wsproto, no deflate
    websockets      uvicorn --ws websockets (websockets' legacy protocol), no deflate
    baseline        with --baseline DIR only: `analytics serve` of another checkout's code
                    (e.g. `git archive main`), on the same database, in turn with the others

    .venv/bin/python -m bench.sockets [--count 2000] [--most 10000] [--rounds 3]
                                      [--variants serve,baseline] [--baseline DIR]

(standalone it writes bench/results/sockets.json; `make bench` puts the same in latest.json)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.stack import RESULTS, Stack, analytics_command, code_env, cpu_seconds, rss_mb
from realtime.event_types import QR_SCAN
from tests.support.http import bearer
from tests.support.servers import ROOT, free_port, serve_command

WARM = 50
BATCH = 100  # handshakes in flight at once
PAUSE = 0.3  # between update events: longer than the live tick, so each is an update
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"  # httpx's own is counted as a bot


def _uvicorn(ws: str, deflate: str) -> list[str]:
    # `analytics serve`'s options but the websocket ones (app/http/serving.py).
    return [*serve_command(), "--ws", ws, "--ws-per-message-deflate", deflate]


VARIANTS: dict[str, list[str]] = {
    "serve": analytics_command(ROOT, "serve"),
    "sansio+deflate": _uvicorn("websockets-sansio", "true"),
    "wsproto": _uvicorn("wsproto", "false"),
    "websockets": _uvicorn("websockets", "false"),
}


async def _open(url: str, headers: dict, count: int, into: list) -> None:
    from websockets.asyncio.client import connect

    async def one():
        ws = await connect(url, additional_headers=headers, open_timeout=60, max_queue=4)
        await asyncio.wait_for(ws.recv(), 60)  # the snapshot: the socket is fully set up
        return ws

    for start in range(0, count, BATCH):
        into += await asyncio.gather(*(one() for _ in range(min(BATCH, count - start))))


async def one_server(stack: Stack, variant: str, count: int, updates: int = 10,
                     baseline: Path | None = None) -> dict:
    """Resident memory of one fresh single-worker server before and after `count` sockets,
    and its CPU per update frame sent while `updates` events reach them all."""
    name = f"sockets-{variant}"
    port = free_port()
    if variant == "baseline":  # `analytics serve` of the other checkout's code
        stack.start(name, analytics_command(baseline, "serve"), port, cwd=baseline,
                    WEB_CONCURRENCY="1", **code_env(baseline))
    else:
        stack.start(name, VARIANTS[variant], port, WEB_CONCURRENCY="1")
    process = stack.processes.pop(name)
    url = f"ws://127.0.0.1:{port}/api/analytics/{stack.first_tenant}/live"
    sockets: list = []
    try:
        await _open(url, bearer(stack.token), WARM, sockets)
        await asyncio.sleep(1)
        before = rss_mb(process.pid)
        await _open(url, bearer(stack.token), count, sockets)
        await asyncio.sleep(2)
        after = rss_mb(process.pid)
        sent = await _send_cost(process.pid, port, stack.first_tenant, updates)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
    return {"sockets": count, "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
            "kb_per_socket": round((after - before) * 1024 / count, 1),
            "cpu_us_per_frame": round(sent * 1e6 / (updates * (WARM + count)), 1)
            if updates else None}


async def _send_cost(pid: int, port: int, tenant: int, updates: int) -> float:
    """CPU seconds the worker spends while `updates` events, one per throttle period, each
    reach every socket as an update frame."""
    import httpx

    if not updates:
        return 0.0
    used = cpu_seconds(pid)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for n in range(updates):
            # A visitor each (the Stack trusts one proxy hop): the per-address limit stays out.
            response = await http.post("/api/analytics/track", json={
                "tenant_id": tenant, "event_type": QR_SCAN.name},
                headers={"User-Agent": BROWSER, "X-Forwarded-For": f"198.51.100.{n % 250 + 1}"})
            response.raise_for_status()
            await asyncio.sleep(PAUSE)
    await asyncio.sleep(1)
    return cpu_seconds(pid) - used


async def measure(stack: Stack, *, count: int = 2000, most: int = 10_000, rounds: int = 3,
                  variants: list[str] | None = None, baseline: Path | None = None) -> dict:
    names = variants or [*VARIANTS, *(["baseline"] if baseline else [])]
    if "baseline" in names and baseline is None:
        raise ValueError("the baseline variant needs --baseline DIR")
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            runs[name].append(await one_server(stack, name, count, baseline=baseline))
            print(f"sockets: {name} {runs[name][-1]}", file=sys.stderr, flush=True)
    kb = {name: statistics.median(r["kb_per_socket"] for r in rs) for name, rs in runs.items()}
    result = {
        "sockets": count,
        "rounds": rounds,
        "kb_per_socket": kb,
        "kb_per_socket_each_round": {n: [r["kb_per_socket"] for r in rs] for n, rs in runs.items()},
        "cpu_us_per_frame": {n: statistics.median(r["cpu_us_per_frame"] for r in rs)
                             for n, rs in runs.items()},
    }
    if "serve" in kb and "sansio+deflate" in kb:
        result["deflate_over_serve"] = round(kb["sansio+deflate"] / kb["serve"], 2)
    if "serve" in kb and "baseline" in kb:
        result["serve_over_baseline"] = round(kb["serve"] / kb["baseline"], 2)
    if most:
        full = await one_server(stack, "serve", most, updates=0)
        result["most"] = {"sockets": most, "rss_mb": full["rss_after_mb"],
                          "kb_per_socket": full["kb_per_socket"]}
        if baseline is not None:
            full = await one_server(stack, "baseline", most, updates=0, baseline=baseline)
            result["most_baseline"] = {"sockets": most, "rss_mb": full["rss_after_mb"],
                                       "kb_per_socket": full["kb_per_socket"]}
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--most", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=None, help="comma-separated; default all")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of other code to measure as `baseline`")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    stack = Stack(1)
    try:
        await stack.setup(10, bare=False)
        result = await measure(stack, count=args.count, most=args.most, rounds=args.rounds,
                               variants=args.variants.split(",") if args.variants else None,
                               baseline=args.baseline)
    finally:
        await stack.teardown()
    result["started"] = started
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sockets.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
