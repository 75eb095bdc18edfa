"""Idle dashboards: what an open websocket costs a `web` worker, per uvicorn websocket option.

Runs inside `make bench`'s Stack (its database and token). Each variant is a server of ONE
worker started afresh; its resident memory is read with WARM sockets open, then again once
COUNT more idle dashboards of one tenant are open (each past its snapshot, opened by a client
that offers permessage-deflate, as browsers do): the difference per socket. Variants take
turns within each round; the figure is the median of the rounds. Last, MOST dashboards on
`analytics serve` itself: the worker's whole resident memory.

    serve           `analytics serve` as the Procfile runs it: websockets-sansio, no deflate
    sansio+deflate  the same with permessage-deflate accepted (uvicorn's default)
    wsproto         uvicorn --ws wsproto, no deflate
    websockets      uvicorn --ws websockets (websockets' legacy protocol), no deflate

    .venv/bin/python -m bench.sockets [--count 2000] [--most 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys

from bench.stack import BIN, Stack, rss_mb
from tests.support.http import bearer
from tests.support.servers import free_port

WARM = 50
BATCH = 100  # handshakes in flight at once


def _uvicorn(ws: str, *options: str) -> list[str]:
    # `analytics serve`'s options but the websocket ones (app/ops/cli.py).
    return [sys.executable, "-m", "uvicorn", "app.asgi:app", "--host", "127.0.0.1",
            "--loop", "uvloop", "--http", "httptools", "--ws", ws, "--ws-max-size", "65536",
            "--log-level", "warning", "--no-server-header", "--no-proxy-headers", *options]


VARIANTS: dict[str, list[str]] = {
    "serve": [str(BIN / "analytics"), "serve"],
    "sansio+deflate": _uvicorn("websockets-sansio", "--ws-per-message-deflate", "true"),
    "wsproto": _uvicorn("wsproto", "--ws-per-message-deflate", "false"),
    "websockets": _uvicorn("websockets", "--ws-per-message-deflate", "false"),
}


async def _open(url: str, headers: dict, count: int, into: list) -> None:
    from websockets.asyncio.client import connect

    async def one():
        ws = await connect(url, additional_headers=headers, open_timeout=60, max_queue=4)
        await asyncio.wait_for(ws.recv(), 60)  # the snapshot: the socket is fully set up
        return ws

    for start in range(0, count, BATCH):
        into += await asyncio.gather(*(one() for _ in range(min(BATCH, count - start))))


async def one_server(stack: Stack, variant: str, count: int) -> dict:
    """Resident memory of one fresh single-worker server before and after `count` sockets."""
    name = f"sockets-{variant}"
    port = free_port()
    argv = [*VARIANTS[variant], *([] if variant == "serve" else ["--port", str(port)])]
    stack.start(name, argv, port, WEB_CONCURRENCY="1")
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
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
    return {"sockets": count, "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
            "kb_per_socket": round((after - before) * 1024 / count, 1)}


async def measure(stack: Stack, *, count: int = 2000, most: int = 10_000, rounds: int = 3,
                  variants: list[str] | None = None) -> dict:
    names = variants or list(VARIANTS)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            runs[name].append(await one_server(stack, name, count))
            print(f"sockets: {name} {runs[name][-1]}", file=sys.stderr, flush=True)
    kb = {name: statistics.median(r["kb_per_socket"] for r in rs) for name, rs in runs.items()}
    result = {
        "sockets": count,
        "rounds": rounds,
        "kb_per_socket": kb,
        "kb_per_socket_each_round": {n: [r["kb_per_socket"] for r in rs] for n, rs in runs.items()},
    }
    if "serve" in kb and "sansio+deflate" in kb:
        result["deflate_over_serve"] = round(kb["sansio+deflate"] / kb["serve"], 2)
    if most:
        full = await one_server(stack, "serve", most)
        result["most"] = {"sockets": most, "rss_mb": full["rss_after_mb"],
                          "kb_per_socket": full["kb_per_socket"]}
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--most", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    stack = Stack(1)
    try:
        await stack.setup(10, bare=False)
        result = await measure(stack, count=args.count, most=args.most, rounds=args.rounds,
                               variants=args.variants.split(","))
    finally:
        await stack.teardown()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
