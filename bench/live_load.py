"""Live delay under load: dashboards on many tenants while `/track` runs at half its peak.

Runs inside `make bench`'s Stack (the real `web` with its production workers and 10,000
tenants). bench/loadgen.py sends background events over every tenant at a constant rate (no
`qr_scan`); meanwhile SOCKETS dashboards watch the first TENANTS tenants (so
they get their share of the background too). Probes are `qr_scan` events on a random watched
tenant, one at a time after a random pause of 0 to 250 ms (one throttle period): the clock
starts when the probe's `/track` response is read and stops, for each of that tenant's
sockets, when the socket reads an update whose `qr_scans` shows the probe.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import orjson
from websockets.asyncio.client import connect

from app.accounts.tokens import create_token
from bench.batches import spy_on, write_profile
from bench.live_latency import summary as latency_summary
from bench.stack import ROOT, children
from realtime.event_types import EVENT_TYPES, QR_SCAN
from tests.support.http import bearer

# The background load sends every type but the probes' (and time on page, which needs its
# seconds), so a probe's arrival is the only change of its counter.
BACKGROUND_TYPES = ",".join(t.name for t in EVENT_TYPES if t is not QR_SCAN and not t.timed)
PAUSE = 0.25
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"  # httpx's own is counted as a bot


def summary(seconds: list[float]) -> dict[str, float]:
    return {**latency_summary(seconds), "samples": len(seconds)}


async def measure(stack, background_rps: float, *, sockets: int = 500, tenants: int = 50,
                  probes: int = 300, profile: str | None = None) -> dict:
    """`profile` names the flame summary (bench/results/) of the web workers sampled while
    the probes run; sampling slows them, so such a round is not one of the figures."""
    watched = list(range(stack.first_tenant, stack.first_tenant + tenants))
    conn = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        tokens = {t: (await create_token(conn, t))[1] for t in watched}
    finally:
        await conn.close()
    base = stack.url("web")
    ws_base = base.replace("http://", "ws://")
    owners = [watched[i % tenants] for i in range(sockets)]
    clients = []
    for start in range(0, sockets, 50):
        clients += await asyncio.gather(*[
            connect(f"{ws_base}/api/analytics/{t}/live", max_queue=None,
                    additional_headers=bearer(tokens[t]))
            for t in owners[start:start + 50]])
    arrivals: dict[tuple[int, int], dict[int, float]] = {}  # (tenant, count) -> socket -> time
    initial: dict[int, int] = {}  # tenant -> qr_scans before the first probe
    changed = asyncio.Event()

    async def read(index: int, ws) -> None:
        tenant = owners[index]
        async for message in ws:
            frame = orjson.loads(message)
            if frame["type"] not in ("snapshot", "update"):
                continue
            count = frame["data"][QR_SCAN.live]
            if frame["type"] == "snapshot":  # the peak run before may have sent qr_scans
                initial.setdefault(tenant, count)
            arrivals.setdefault((tenant, count), {}).setdefault(index, time.perf_counter())
            changed.set()

    print(f"live under load: {len(clients)} sockets open", file=sys.stderr, flush=True)
    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(clients)]
    per_tenant = {t: [i for i, owner in enumerate(owners) if owner == t] for t in watched}
    probes_sent = {t: 0 for t in watched}
    background = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", "--url", base,
         "--rate", str(background_rps), "--duration", "3600", "--report-every", "3600",
         "--first-tenant", str(stack.first_tenant), "--tenants", "10000",
         "--types", BACKGROUND_TYPES],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    delays: list[float] = []
    lost = 0
    spies, raws = [], Path(tempfile.mkdtemp(prefix="bench-live-")) if profile else None
    try:
        await asyncio.sleep(3)  # the background reaches its pace
        if raws:  # for about as long as the probes take (each waits PAUSE / 2 on average)
            spies = spy_on(children(stack.processes["web"].pid), round(probes * PAUSE / 2),
                           raws)
        body = {"event_type": QR_SCAN.name}
        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(probes):
                await asyncio.sleep(random.uniform(0, PAUSE))
                tenant = random.choice(watched)
                probes_sent[tenant] += 1
                want = initial[tenant] + probes_sent[tenant]
                response = await http.post("/api/analytics/track", content=orjson.dumps(
                    {**body, "tenant_id": tenant}), headers={"Content-Type": "application/json",
                                                         "User-Agent": BROWSER})
                answered = time.perf_counter()
                assert response.status_code == 200, response.text
                deadline = answered + 5
                while True:
                    got = arrivals.get((tenant, want), {})
                    if len(got) == len(per_tenant[tenant]) or time.perf_counter() > deadline:
                        break
                    changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(),
                                               max(0.0, deadline - time.perf_counter()))
                lost += len(per_tenant[tenant]) - len(got)
                if probes_sent[tenant] == 1 or sum(probes_sent.values()) % 50 == 0:
                    print(f"live under load: {sum(probes_sent.values())} probes", file=sys.stderr,
                          flush=True)
                delays += [max(0.0, t - answered) for t in got.values()]
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
        background.send_signal(signal.SIGINT)  # it stops and prints what it did
        out, _ = background.communicate(timeout=60)
    final = json.loads(out.strip().splitlines()[-1])
    for spy in spies:
        await asyncio.to_thread(spy.wait, probes * PAUSE + 30)
    found = {"profile": write_profile(profile, f"live updates, {sockets} sockets on {tenants} "
                                               f"tenants, ingest at {round(background_rps)} "
                                               f"events/s", raws)} if raws else {}
    return {
        **found,
        "sockets": sockets,
        "tenants": tenants,
        "probes": probes,
        "updates_missing_after_5s": lost,
        "background_target_rps": round(background_rps),
        "background_achieved_rps": round(final["achieved_rate"]),
        "background_non_200": final["answered"] - final.get("statuses", {}).get("200", 0),
        "track_response_to_update": summary(delays),
    }


async def main() -> None:
    """Standalone: the Stack, the peak `/track` throughput at concurrency 32, then the above."""
    from bench.stack import Stack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    stack = Stack(args.workers)
    try:
        await stack.setup(10_000, bare=False)
        peak = stack.peak_rps(5)
        for _ in range(args.rounds):
            result = await measure(stack, peak / 2, probes=args.probes)
            print(json.dumps({"peak_rps": round(peak), **result}, indent=2), flush=True)
    finally:
        await stack.teardown()


if __name__ == "__main__":
    asyncio.run(main())
