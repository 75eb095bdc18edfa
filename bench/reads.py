"""Target 3 of the performance issue: GET summary against a bare Quart route that returns the
same JSON, wrk at c=16, interleaved rounds, median.

The bench tenant gets a full week of rollups, each day with its own visitor sketch (the
read's worst case: seven sketches to union). The bare app (bench/bare.py) answers the bytes
the real endpoint answered, so both send the same body; only the work behind it differs.
One more run of the summary, with py-spy sampling the workers, writes its flame summary to
bench/results/profile-summary-c16.txt.
`make bench` runs it (bench/run.py); alone it writes bench/results/reads.json.

    .venv/bin/python -m bench.reads [--rounds 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from bench.batches import spy_on, write_profile
from bench.stack import RESULTS, ROOT, Stack, children, ensure_wrk, run_wrk
from tests.support.http import bearer

SCRIPT = ROOT / "bench" / "summary.lua"
VISITORS_PER_DAY = 3000


async def seed_week(stack: Stack, tenant_id: int) -> None:
    """Seven days of rollups with overlapping visitor sketches (dense HyperLogLogs)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(stack.env.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    conn = await asyncpg.connect(stack.env["DATABASE_URL"])
    scratch = stack.env["ANALYTICS_KEY_PREFIX"] + "bench-seed"
    today = dt.datetime.now(dt.UTC).date()
    try:
        for back in range(7):
            start = back * VISITORS_PER_DAY // 2
            await redis.delete(scratch)
            await redis.pfadd(scratch, *(f"v{n}" for n in range(start, start + VISITORS_PER_DAY)))
            sketch = await redis.get(scratch)
            await conn.execute(
                """INSERT INTO daily_rollups (tenant_id, day, events, pageviews, whatsapp_clicks,
                                              time_on_page_count, time_on_page_ms, visitors,
                                              visitors_hll)
                   VALUES ($1, $2, $3, $3, $4, $4, $5, $6, $7)
                   ON CONFLICT (tenant_id, day) DO UPDATE SET visitors = excluded.visitors,
                       visitors_hll = excluded.visitors_hll""",
                tenant_id, today - dt.timedelta(days=back), 5 * VISITORS_PER_DAY, 40,
                40 * 31_000, await redis.pfcount(scratch), sketch)
    finally:
        await redis.delete(scratch)
        await redis.aclose()
        await conn.close()


def median_of(runs: list[dict]) -> dict:
    return {key: round(statistics.median(r[key] for r in runs), 3)
            for key in ("rps", "p50_ms", "p99_ms")} | {"non_2xx": sum(r["non_2xx"] for r in runs)}


async def measure(wrk: str, *, rounds: int, duration: int, connections: int = 16) -> dict:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    body_file = RESULTS / f"summary-body-{os.getpid()}.json"
    stack = Stack(os.cpu_count() or 1)
    stack.env["BENCH_SUMMARY_FILE"] = str(body_file)
    runs: dict[str, list[dict]] = {"summary": [], "bare": []}
    try:
        await stack.setup(10, bare=True)
        await seed_week(stack, stack.first_tenant)
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"{stack.url('web')}/api/analytics/{stack.first_tenant}",
                                    headers=bearer(stack.token))
        answer.raise_for_status()
        RESULTS.mkdir(exist_ok=True)
        body_file.write_bytes(answer.content)
        env = {"BENCH_TENANT": str(stack.first_tenant), "BENCH_TOKEN": stack.token}
        for n in range(rounds):
            # Alternating which goes first, so a drift of the machine hits both alike.
            for name in ("summary", "bare")[::1 if n % 2 == 0 else -1]:
                server = "web" if name == "summary" else "bare"
                runs[name].append(await asyncio.to_thread(
                    run_wrk, wrk, stack.url(server), SCRIPT, connections, duration, env))
        # Where the workers' time goes, in one more run of the summary (not in the figures:
        # sampling slows them).
        raws = Path(tempfile.mkdtemp(prefix="bench-reads-"))
        spies = spy_on(children(stack.processes["web"].pid), duration, raws)
        await asyncio.to_thread(run_wrk, wrk, stack.url("web"), SCRIPT, connections, duration,
                                env)
        for spy in spies:
            await asyncio.to_thread(spy.wait, duration + 30)
        profile = write_profile(f"profile-summary-c{connections}.txt",
                                f"GET summary at c={connections}, {duration} s", raws)
    finally:
        await stack.teardown()
        body_file.unlink(missing_ok=True)
    median = {name: median_of(rs) for name, rs in runs.items()}
    return {
        "started": started, "rounds": rounds, "seconds_per_run": duration,
        "connections": connections, "body_bytes": len(answer.content),
        "runs": runs, "median": median, "profile": profile,
        "ratio_rps": round(median["summary"]["rps"] / median["bare"]["rps"], 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    args = parser.parse_args()
    results = await measure(ensure_wrk(), rounds=args.rounds, duration=args.duration)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reads.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
