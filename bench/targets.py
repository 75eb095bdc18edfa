"""The performance targets the issues set, each read from one run's results and judged.

`make bench` writes every run's results to bench/results/runs/ as well as latest.json, and
`python -m bench.run --targets` runs only what the targets need (about 10 minutes): the
report shows each target in the latest run and whether it held in each of the last three
consecutive runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stack import RESULTS

RUNS = RESULTS / "runs"


@dataclass(frozen=True)
class Target:
    what: str
    goal: str
    # The figure that decides it, or None when the run did not measure it.
    value: Callable[[dict], float | None]
    met: Callable[[float], bool]
    unit: str = ""


def lookup(results: dict, *path: str) -> Any:
    """The value at `path` in the results, or None where the run did not measure it."""
    for key in path:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results


def _worst_live_round(results: dict) -> float | None:
    rounds = lookup(results, "live_under_load", "p99_ms_each_round")
    return max(rounds) if rounds else None


def _insight(read: str) -> Callable[[dict], float | None]:
    def value(results: dict) -> float | None:
        for row in lookup(results, "insights", "results") or []:
            if row.get("read") == read and "spans" in row:
                return row["spans"]["p99_ms"]
        return None
    return value


# Named, so the report can say more of each than its figure (bench/report.py).
TRACK = Target("`/track` throughput vs the bare Quart route, c=32", ">= 1.0x",
               lambda r: lookup(r, "ingest_c32", "ratio_rps"), lambda v: v >= 1.0, "x")
CPU_PER_EVENT = Target("whole-system CPU per accepted event (web, Redis, scheduler, Postgres)",
                       "<= 250 us",
                       lambda r: lookup(r, "ingest_c32", "cpu_us_per_event_whole_system"),
                       lambda v: v <= 250, " us")
SUMMARY = Target("GET summary vs the bare route with the same JSON, c=16", ">= 0.6x",
                 lambda r: lookup(r, "summary_c16", "ratio_rps"), lambda v: v >= 0.6, "x")
SUMMARY_P99 = Target("GET summary p99 at c=16", "< 20 ms",
                     lambda r: lookup(r, "summary_c16", "median", "summary", "p99_ms"),
                     lambda v: v < 20, " ms")
LIVE = Target("live update delay p99, 500 sockets on 50 tenants, ingest at half its peak, "
              "worst round", "< 100 ms", _worst_live_round, lambda v: v < 100, " ms")
IDLE_SOCKET = Target("resident memory per idle websocket, 2,000 on one worker", "<= 20 KB",
                     lambda r: lookup(r, "idle_websockets", "kb_per_socket", "serve"),
                     lambda v: v <= 20, " KB")
SOCKETS_10K = Target("10,000 dashboards on one worker, resident", "< 300 MB",
                     lambda r: lookup(r, "idle_websockets", "most", "rss_mb"),
                     lambda v: v < 300, " MB")
STATS_30D = Target("30-day `/stats` p99, a tenant at its rate limit all month, c=8",
                   "< 50 ms", _insight("stats?period=30d"), lambda v: v < 50, " ms")
BREAKDOWN_30D = Target("30-day `/breakdown/page` p99, a tenant at its rate limit all month, "
                       "c=8", "< 50 ms", _insight("breakdown/page?period=30d"),
                       lambda v: v < 50, " ms")
TARGETS = [TRACK, CPU_PER_EVENT, SUMMARY, SUMMARY_P99, LIVE, IDLE_SOCKET, SOCKETS_10K,
           STATS_30D, BREAKDOWN_30D]


def archive(results: dict) -> Path:
    """Keeps a run's results under runs/, named by when it started."""
    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / (results["started"].replace(" ", "T").replace(":", "") + ".json")
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def last_runs(n: int = 3) -> list[dict]:
    """The last `n` archived runs, oldest first."""
    paths = sorted(RUNS.glob("*.json"))[-n:] if RUNS.exists() else []
    return [json.loads(path.read_text()) for path in paths]


def figure(target: Target, results: dict) -> str | None:
    value = target.value(results)
    return None if value is None else f"{value}{target.unit}"


def judged(target: Target, results: dict) -> str:
    value = target.value(results)
    if value is None:
        return "not measured"
    return f"{figure(target, results)} {'yes' if target.met(value) else 'no'}"


def held_in_all(target: Target, runs: list[dict]) -> str:
    values = [target.value(run) for run in runs]
    if len(runs) < 3 or any(v is None for v in values):
        return "not shown (fewer than three runs measured it)"
    return "yes" if all(target.met(v) for v in values) else "no"
