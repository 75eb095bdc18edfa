"""What the soak checks once the load has stopped: the rollups, the raw events, GET /today and
the dashboards' last frames against what the load generator saw accepted (200)."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import asyncpg
import httpx

from bench.soak.dashboards import Dashboard
from bench.soak.sampling import backlog
from realtime.event_types import COUNTER_OF, COUNTERS, EVENTS, TIME_MS, TODAY
from realtime.keys import Keys
from tests.support.http import bearer

ROLLUP_COLUMNS = COUNTERS
# What GET /today shows for each event type.
TODAY_FIELD = {t.name: t.today for t in TODAY}


async def rollup_sums(conn: asyncpg.Connection, hot: list[int]) -> dict:
    total = await conn.fetchrow(
        "SELECT " + ", ".join(f"coalesce(sum({c}), 0)::bigint AS {c}" for c in ROLLUP_COLUMNS)
        + " FROM daily_rollups")
    per_tenant = await conn.fetch(
        "SELECT tenant_id, "
        + ", ".join(f"coalesce(sum({c}), 0)::bigint AS {c}" for c in ROLLUP_COLUMNS)
        + " FROM daily_rollups WHERE tenant_id = any($1::bigint[]) GROUP BY tenant_id", hot)
    raw = await conn.fetchval("SELECT count(*) FROM events")
    return {"total": dict(total), "raw_events": raw,
            "per_tenant": {str(r["tenant_id"]): {c: r[c] for c in ROLLUP_COLUMNS}
                           for r in per_tenant}}


def delta(now: dict, base: dict) -> dict:
    return {k: now.get(k, 0) - base.get(k, 0) for k in now}


def expected_columns(by_type: dict[str, int], time_ms: int | None) -> dict[str, int]:
    """The rollup columns these accepted events add up to (without TIME_MS when not known)."""
    expected = {EVENTS: sum(by_type.values())}
    for kind, column in COUNTER_OF.items():
        expected[column] = by_type.get(kind, 0)
    if time_ms is not None:
        expected[TIME_MS] = time_ms
    return expected


async def settle(conn: asyncpg.Connection, redis, keys: Keys, hot: list[int], base: dict,
                 accepted: int | None, timeout: float, quiet: float) -> tuple[dict, float]:
    """Waits until the rollups show `accepted` events past `base` (or nothing has moved for
    `quiet` seconds with the streams empty), at most `timeout` seconds."""
    started = time.monotonic()
    last, since = None, time.monotonic()
    while True:
        sums = await rollup_sums(conn, hot)
        waiting = await backlog(redis, keys)
        events = sums["total"]["events"] - base["total"]["events"]
        raw = sums["raw_events"] - base["raw_events"]
        key = (events, raw, waiting)
        if key != last:
            last, since = key, time.monotonic()
        elapsed = time.monotonic() - started
        if accepted is not None and events == accepted and raw == accepted and waiting == 0:
            return sums, elapsed
        # Otherwise: nothing left in the streams, every stored event in the rollups, and no
        # change for `quiet` seconds (the counts will not move any more).
        if waiting == 0 and events == raw and time.monotonic() - since >= quiet:
            return sums, elapsed
        if elapsed >= timeout:
            return sums, elapsed
        await asyncio.sleep(1)


async def today_numbers(url: str, tokens: dict[int, str]) -> dict[int, dict]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        out = {}
        for tenant, token in tokens.items():
            response = await http.get(f"/api/analytics/{tenant}/today",
                                      headers=bearer(token))
            out[tenant] = (response.json() if response.status_code == 200
                           else {"status": response.status_code})
        return out


async def dashboards_behind(dashboards: list[Dashboard], hot_accepted: dict[int, dict[str, int]],
                            timeout: float = 15) -> dict[int, dict]:
    """Waits up to `timeout` s for every dashboard's last frame to show its baseline plus what
    was accepted for its tenant; the fields of those that still do not, by index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(d.behind(hot_accepted[d.tenant]) for d in dashboards):
            break
        await asyncio.sleep(0.5)
    behind = {i: d.behind(hot_accepted[d.tenant]) for i, d in enumerate(dashboards)}
    return {i: w for i, w in behind.items() if w}


@dataclass
class Checked:
    """What the rollups, the raw events, /today and the dashboards showed past the baseline,
    against what was accepted."""

    accepted: int
    got: dict[str, int]  # rollup columns
    want: dict[str, int]  # what the accepted events add up to
    raw_events: int
    settle_s: float
    tenants_wrong: dict[int, dict]  # watched tenants whose rollups differ
    today_wrong: dict[int, dict]  # watched tenants whose /today differs
    behind: dict[int, dict]  # dashboards whose last frame differs
    same_day: bool  # False: the run crossed a UTC midnight, live and /today were not checked

    @property
    def counts_equal(self) -> bool:
        return self.got == self.want and self.raw_events == self.accepted


def compare(final: dict, base: dict, sums: dict, base_today: dict[int, dict],
            today: dict[int, dict], hot: list[int], behind: dict[int, dict], settle_s: float,
            same_day: bool) -> Checked:
    """`final`, the load generator's last line, against the rollups (`sums` past `base`), the
    watched tenants' /today (`today` past `base_today`) and the dashboards found `behind`."""
    hot_accepted = {int(t): c for t, c in final["accepted_hot"].items()}
    tenants_wrong = {}
    for tenant in hot:
        now_t = sums["per_tenant"].get(str(tenant), {})
        base_t = base["per_tenant"].get(str(tenant), {})
        got_t = {c: now_t.get(c, 0) - base_t.get(c, 0) for c in ROLLUP_COLUMNS if c != TIME_MS}
        want_t = expected_columns(hot_accepted[tenant], None)
        if got_t != want_t:
            tenants_wrong[tenant] = {"rollups": got_t, "accepted": want_t}
    today_wrong: dict[int, dict] = {}
    for tenant in hot if same_day else ():
        for kind, field in TODAY_FIELD.items():
            shown = today[tenant].get(field, 0) - base_today[tenant].get(field, 0)
            accepted = hot_accepted[tenant].get(kind, 0)
            if shown != accepted:
                today_wrong.setdefault(tenant, {})[field] = (shown, accepted)
    return Checked(
        accepted=final["accepted"],
        got=delta(sums["total"], base["total"]),
        want=expected_columns(final["accepted_by_type"], final["accepted_time_on_page_ms"]),
        raw_events=sums["raw_events"] - base["raw_events"],
        settle_s=settle_s, tenants_wrong=tenants_wrong, today_wrong=today_wrong,
        behind=behind if same_day else {}, same_day=same_day,
    )


def backlog_trend(series: list[tuple[float, int]], duration: float, rate: float,
                  flush_interval: float) -> dict:
    """Whether the streams' backlog stayed bounded under the load: `series` is (seconds since
    the load began, raw events waiting) sampled every second or so, `rate` the events
    accepted per second.

    The scheduler drains every `flush_interval` seconds, so the backlog is a sawtooth whose
    teeth are at least `rate * flush_interval` high; a drain that keeps up only leaves it
    there. The tolerance, `allowance`, is one flush interval's worth of arrivals. The backlog
    is bounded when both hold:

        trend  the least-squares slope over the last half of the load, times the load's
               length, is at most `allowance`: kept up for as long again, the trend would add
               less than one interval's arrivals (over 600 s: a drain short of the arrivals
               by under 1/120 of them, 58 events/s at 7,000/s);
        peaks  the highest backlog of the last third is at most that of the middle third
               plus `allowance`: the teeth are not growing.

    The trend alone misses a taller tooth in the middle of the last half, the peaks alone
    growth smaller than a tooth; a drain falling behind by a steady fraction of the
    arrivals fails both on a long enough run. A short run judges little: `allowance /
    duration` is the smallest deficit per second it can see, and teeth several intervals
    tall (a drain pass longer than the interval: a drain with no time to spare) tilt the
    slope of a last half that holds only a few of them, so such a run fails rather than
    passes on too little evidence (tests/bench/test_backlog_trend.py)."""
    points = [(t, b) for t, b in series if 0 <= t <= duration]
    allowance = rate * flush_interval
    out = {"samples": len(points), "allowance": round(allowance), "bounded": None}
    if len(points) < 6 or duration <= 0:
        return out
    values = [b for _, b in points]
    last_half = [(t, b) for t, b in points if t >= duration / 2]
    middle = [b for t, b in points if duration / 3 <= t < 2 * duration / 3]
    last = [b for t, b in points if t >= 2 * duration / 3]
    ts = [t for t, _ in last_half]
    mean_t, mean_b = statistics.fmean(ts), statistics.fmean(b for _, b in last_half)
    spread = sum((t - mean_t) ** 2 for t in ts)
    slope = (sum((t - mean_t) * (b - mean_b) for t, b in last_half) / spread) if spread else 0.0
    out |= {
        "min": min(values), "max": max(values), "mean": round(statistics.fmean(values)),
        "last": values[-1],
        "slope_last_half_per_s": round(slope, 1),
        "trend_over_run": round(slope * duration),
        "max_middle_third": max(middle, default=0), "max_last_third": max(last, default=0),
    }
    out["trend_ok"] = out["trend_over_run"] <= allowance
    out["peaks_ok"] = out["max_last_third"] <= out["max_middle_third"] + allowance
    out["bounded"] = out["trend_ok"] and out["peaks_ok"]
    return out


def verdict(final: dict, rate: float | None, checked: Checked, reconnects: int,
            memory: dict, trend: dict) -> dict[str, bool]:
    """The soak passes when every one of these holds (`rate` None: the peak, closed loop,
    has no target to hold)."""
    # Redis holds data that legitimately grows (the day's sketches, the minute sketches of
    # the last 6 minutes): its memory is reported, the processes of the service are judged.
    judged = {k: v for k, v in memory.items()
              if v["flat"] is not None and not k.startswith("redis")}
    judged_verdict = {
        "rollups_equal_accepted": (checked.counts_equal and not checked.tenants_wrong
                                   and not checked.today_wrong),
        "no_errors": (final["non_200"] == 0 and not final["errors"] and final["never_sent"] == 0
                      and final["unknown_outcome"] == 0),
        "dashboards_current": not checked.behind and reconnects == 0,
        "memory_flat": all(v["flat"] for v in judged.values()),
        "backlog_bounded": bool(trend["bounded"]),
    }
    if rate is not None:
        judged_verdict["rate_held"] = final["achieved_rate"] >= 0.97 * rate
    return judged_verdict
