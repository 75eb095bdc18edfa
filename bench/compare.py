"""`/track` on this code against another commit's, the whole system, interleaved.

Two stacks side by side (bench/stack.py: `web` with one worker per core and the
`scheduler`, TENANTS tenants, each in a database and key prefix of its own), one running
this checkout's code and one a worktree of `--against` (this virtualenv, that commit's
packages first on the path). Rounds alternate between them, the first of a round pair
swapped each time; while one stack's round runs, the other's scheduler is stopped. Each
round is wrk at `--connections` (32) with bench/track.lua for `--duration` seconds, then
the settling of its events, billed as `make bench` bills them (bench/run.py's CpuMeter and
`settled`): req/s, p50 and p99, and CPU microseconds an event of the web workers,
scheduler, Redis and Postgres. Prints each round and the medians as JSON, and writes them to
`--out` (bench/results/compare.json).

Long rounds show what a steady load costs: work the scheduler gathers over an interval
(the breakdown count, every `Settings.breakdown_interval`) is billed to a short round in
one go, with the settling's wait for it.

    .venv/bin/python -m bench.compare --against 28353df [--rounds 3] [--duration 60]
                                      [--connections 32] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.run import CpuMeter, settled
from bench.stack import RESULTS, ROOT, Stack, ensure_wrk, run_wrk

TENANTS = 10_000
SCRIPT = ROOT / "bench" / "track.lua"


def one_round(stack: Stack, other: Stack, wrk: str, seconds: int, connections: int) -> dict:
    env = stack.track_env()
    meter = CpuMeter(stack, "web")
    other.processes["scheduler"].send_signal(signal.SIGSTOP)
    try:
        result = meter.run(
            lambda: run_wrk(wrk, stack.url("web"), SCRIPT, connections, seconds, env),
            seconds, settle=lambda: settled(stack))
    finally:
        other.processes["scheduler"].send_signal(signal.SIGCONT)
    cost = meter.per_request()
    return {"rps": result["rps"], "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
            "non_2xx": result["non_2xx"],
            "cpu_us_per_event": {**cost, "whole system": sum(cost.values())},
            "settle_s": meter.settle_seconds[0]}


def medians(rows: list[dict]) -> dict:
    groups = rows[0]["cpu_us_per_event"]
    return {**{key: statistics.median(r[key] for r in rows)
               for key in ("rps", "p50_ms", "p99_ms")},
            "cpu_us_per_event": {g: statistics.median(r["cpu_us_per_event"][g] for r in rows)
                                 for g in groups}}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each")
    parser.add_argument("--duration", type=int, default=60, help="seconds of wrk a round")
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections")
    parser.add_argument("--out", type=Path, default=RESULTS / "compare.json")
    args = parser.parse_args()
    wrk = ensure_wrk()
    commit = subprocess.run(["git", "rev-parse", "--short", args.against], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.strip()
    worktree = Path(tempfile.mkdtemp(prefix="bench-compare-")) / commit
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(worktree), commit],
                   cwd=ROOT, check=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    workers = 2
    stacks = {"this": Stack(workers), commit: Stack(workers, code=worktree)}
    rounds: dict[str, list[dict]] = {name: [] for name in stacks}
    try:
        for stack in stacks.values():
            await stack.setup(TENANTS, bare=False)
            settled(stack)
        names = list(stacks)
        for i in range(args.rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                other = next(s for n, s in stacks.items() if n != name)
                rounds[name].append(one_round(stacks[name], other, wrk, args.duration,
                                              args.connections))
                print(json.dumps({name: rounds[name][-1]}), flush=True)
        report = {"started": started, "against": commit, "rounds": args.rounds,
                  "seconds": args.duration, "connections": args.connections,
                  "median": {name: medians(rows) for name, rows in rounds.items()},
                  "all": rounds}
        print(json.dumps(report["median"], indent=1))
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    finally:
        for stack in stacks.values():
            await stack.teardown()
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT,
                       check=False)
        shutil.rmtree(worktree.parent, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
