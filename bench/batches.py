"""How /track's micro-batches (realtime/batching.py) come out at a given concurrency, and where
a web worker's time goes while it serves them.

Each measurement starts a `web` of its own next to the running stack (same database, key
prefix and settings), sends it wrk's /track load, and stops it: at shutdown each worker logs
how many script calls carried how many events. `--profile` also samples every worker with
py-spy for the run and writes a flame summary (the functions with most samples, inclusive
and self) to bench/results/profile-track-c<N>.txt.

    .venv/bin/python -m bench.batches [--connections 32 1] [--seconds 10] [--profile]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.stack import BIN, RESULTS, ROOT, Stack, children, ensure_wrk, free_port, run_wrk
from tests.support.servers import wait_for_port

LOG_LINE = "track batches (events a call: calls): "


def distribution(sizes: Counter) -> dict:
    """Calls, events, mean and percentiles of events a call (weighted by event: the batch an
    event travelled in)."""
    calls, events = sum(sizes.values()), sum(size * n for size, n in sizes.items())
    if not calls:
        return {"calls": 0, "events": 0}

    def percentile(p: float) -> int:
        seen = 0
        for size in sorted(sizes):
            seen += size * sizes[size]
            if seen >= p * events:
                return size
        return max(sizes)

    return {"calls": calls, "events": events, "events_per_call": round(events / calls, 2),
            "event_p50": percentile(0.5), "event_p90": percentile(0.9),
            "event_p99": percentile(0.99), "max": max(sizes),
            "sizes": {str(size): sizes[size] for size in sorted(sizes)}}


def flame_summary(raw: list[Path], top: int = 40) -> str:
    """py-spy's raw (collapsed) stacks of every worker, as the functions most often on the
    stack (inclusive) and at its top (self), in % of samples."""
    inclusive, own, total = Counter(), Counter(), 0
    for path in raw:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = [frame.split(" (")[0] + "  " + frame.rpartition("/")[2].rstrip(")")
                      for frame in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    if not total:
        return "no samples\n"
    lines = [f"{total} samples over the workers", "", "inclusive (on the stack):"]
    lines += [f"{100 * n / total:6.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["", "self (top of the stack):"]
    lines += [f"{100 * n / total:6.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines) + "\n"


def spy_on(workers: list[int], seconds: int, into: Path) -> list[subprocess.Popen]:
    """py-spy sampling each worker for `seconds`, its raw stacks written into `into`; wait
    for the processes returned."""
    return [subprocess.Popen(
        [str(BIN / "py-spy"), "record", "--pid", str(worker), "--duration", str(seconds),
         "--rate", "250", "--format", "raw", "--nonblocking", "--nolineno",
         "--output", str(into / f"worker-{worker}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for worker in workers]


def write_profile(name: str, what: str, raws: Path) -> str:
    """The flame summary of the stacks `spy_on` wrote into `raws`, as bench/results/`name`;
    returns its path from the repository's root."""
    RESULTS.mkdir(exist_ok=True)
    summary = RESULTS / name
    summary.write_text(f"{what}, py-spy on every web worker\n\n"
                       + flame_summary(sorted(raws.glob("worker-*.txt"))))
    return str(summary.relative_to(ROOT))


def measure(stack: Stack, wrk: str, connections: int, seconds: int,
            profile: bool = False) -> dict:
    """Batch sizes (and a profile) of a fresh `web` under wrk's /track load at `connections`."""
    port = free_port()
    logs = Path(tempfile.mkdtemp(prefix="bench-batches-"))
    with open(logs / "web.log", "wb") as output:
        web = subprocess.Popen([str(BIN / "analytics"), "serve"], cwd=ROOT, stdout=output,
                               stderr=subprocess.STDOUT, env={**stack.env, "PORT": str(port)})
        try:
            wait_for_port(port, timeout=30)
            time.sleep(2)
            spies = spy_on(children(web.pid), seconds, logs) if profile else []
            env = stack.track_env()
            load = run_wrk(wrk, f"http://127.0.0.1:{port}", ROOT / "bench" / "track.lua",
                           connections, seconds, env)
            for spy in spies:
                spy.wait(timeout=seconds + 30)
        finally:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=30)
    sizes = Counter()
    for line in (logs / "web.log").read_text(errors="replace").splitlines():
        if LOG_LINE in line:
            sizes.update({int(k): v for k, v in
                          ast.literal_eval(line.split(LOG_LINE, 1)[1]).items()})
    result = {"connections": connections, "load": load, "batches": distribution(sizes)}
    if profile:
        result["profile"] = write_profile(f"profile-track-c{connections}.txt",
                                          f"/track at c={connections}, {seconds} s", logs)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    wrk = ensure_wrk()
    stack = Stack(2)
    try:
        await stack.setup(args.tenants, bare=False)
        for connections in args.connections:
            print(json.dumps(measure(stack, wrk, connections, args.seconds, args.profile)),
                  flush=True)
    finally:
        await stack.teardown()


if __name__ == "__main__":
    asyncio.run(main())
