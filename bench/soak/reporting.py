"""What the soak prints and writes: progress lines, the memory and CPU reports, the summary
and the tables of the Soak section of docs/performance.md."""

from __future__ import annotations

import collections
import json
import os
import re
import statistics
import time
from pathlib import Path

from bench.soak.checking import ROLLUP_COLUMNS, Checked
from bench.soak.dashboards import Dashboard


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def progress(window: dict, row: dict, updates0: int) -> str:
    """One line per window of the load generator, with the sample taken at its end."""
    rss = ", ".join(f"{label.replace('web ', '')} {mb:.0f}" for label, mb in row["rss_mb"].items())
    return (f"t={window['t']:>4.0f}s {window['rate']:>6.0f}/s "
            f"non-200 {window['answered'] - window['accepted']} "
            f"errors {sum(window['errors'].values())} backlog max {window['max_backlog']} "
            f"p99 {window['latency_from_due']['p99_ms']} ms | stream {row.get('stream_backlog')} "
            f"updates {row['updates_so_far'] - updates0} | RSS MB {rss}")


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
            "end_mb": used[-1][1],
            "after_settle_mb": after.get("redis_used_memory_mb") if after else None,
            "peak_mb": max(v for _, v in used),
            "last_half_growth_mb": round(
                used[-1][1] - (middle.get("redis_used_memory_mb") or used[0][1]), 1),
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
    report["percent_of_one_core"]["load generator"] = round(
        100 * final["cpu_seconds"] / final["seconds"], 1)
    busy = [(b - a) for a, b in zip(first["system_jiffies"], last["system_jiffies"], strict=True)]
    report["machine_busy_percent"] = round(100 * busy[0] / busy[1], 1) if busy[1] else None
    series = []
    for a, b in zip(samples, samples[1:], strict=False):
        d_busy = b["system_jiffies"][0] - a["system_jiffies"][0]
        d_total = b["system_jiffies"][1] - a["system_jiffies"][1]
        series.append(round(100 * d_busy / d_total, 1) if d_total else None)
    report["machine_busy_percent_by_sample"] = series
    # What the rest of the machine (other people's work, Postgres's own background processes,
    # the kernel) took, in % of one core: the machine's busy time minus this run's processes.
    cores = os.cpu_count() or 1
    others = []
    for a, b in zip(samples, samples[1:], strict=False):
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


def load_section(final: dict, windows: list[dict], rate: float | None,
                 bench_peak: float | None) -> dict:
    rates = [w["rate"] for w in windows if w["seconds"] and w["t"] <= final["seconds"] + 0.5]
    by_second = final["answered_by_second"][1:-1]
    return {
        "target_rate": rate, "achieved_rate": final["achieved_rate"],
        "accepted_rate": final["accepted_rate"], "seconds": final["seconds"],
        "seconds_until_last_answer": final["seconds_until_last_answer"],
        "due": final["due"], "sent": final["sent"], "answered": final["answered"],
        "accepted": final["accepted"], "non_200": final["non_200"],
        "non_200_statuses": {k: v for k, v in final["statuses"].items() if k != "200"},
        "errors": final["errors"], "unknown_outcome": final["unknown_outcome"],
        "never_sent": final["never_sent"], "max_backlog": final["max_backlog"],
        "connections_opened": final["connects"],
        "window_rate": {"min": min(rates, default=None), "max": max(rates, default=None),
                        "mean": rounded(statistics.fmean(rates)) if rates else None,
                        "stdev": rounded(statistics.pstdev(rates)) if rates else None},
        "second_rate": {"min": min(by_second, default=None), "max": max(by_second, default=None)},
        "latency_from_due": final["latency_from_due"],
        "latency_from_send": final["latency_from_send"],
        "generator_cpu_s": final["cpu_seconds"],
        "non_200_samples": final["non_200_samples"],
        # --peak: what the service sustained against make bench's peak (a quiet machine's).
        "bench_peak_rps": bench_peak,
        "of_bench_peak": (round(final["achieved_rate"] / bench_peak, 2)
                          if rate is None and bench_peak else None),
    }


def rollups_section(checked: Checked) -> dict:
    got, want = checked.got, checked.want
    return {
        "accepted": checked.accepted, "rollup_events": got["events"],
        # > 0: events the server counted although it answered something else (or
        # nothing): at most non_200 + unknown_outcome.
        "rollups_minus_accepted": got["events"] - checked.accepted,
        "raw_events": checked.raw_events,
        "equal": checked.counts_equal,
        "columns": {c: {"rollups": got[c], "accepted": want[c]} for c in ROLLUP_COLUMNS},
        "watched_tenants_wrong": checked.tenants_wrong, "get_today_wrong": checked.today_wrong,
        "settle_s": round(checked.settle_s, 1),
    }


def live_section(dashboards: list[Dashboard], tenants: int, updates: list[int], final: dict,
                 checked: Checked) -> dict:
    return {
        "sockets": len(dashboards), "tenants": tenants,
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
        "last_frame_matches_accepted": (len(dashboards) - len(checked.behind)
                                        if checked.same_day else None),
        "behind_examples": {str(i): w for i, w in list(checked.behind.items())[:5]},
    }


def without_raw_counters(samples: list[dict]) -> list[dict]:
    """The samples as results.json keeps them: without the pids and raw CPU counters the
    reports were computed from."""
    for s in samples:
        s.pop("pids", None)
        s.pop("system_jiffies", None)
        s.pop("postgres_cpu_s", None)
    return samples


def write(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_summary(results)
    print("\nFor the Soak section of docs/performance.md:\n")
    print(markdown(results))
    print()
    log(f"wrote {out}")


def print_summary(r: dict) -> None:
    load, roll, live = r["load"], r["rollups"], r["live"]
    print()
    due, sent = load["latency_from_due"], load["latency_from_send"]
    windows, seconds = load["window_rate"], load["second_rate"]
    target = (f"target {load['target_rate']}/s" if load["target_rate"] is not None else
              "the peak (wrk, closed loop)")
    print(f"rate      {target} for {load['seconds']:.0f} s, "
          f"achieved {load['achieved_rate']}/s "
          f"(last answer at {load['seconds_until_last_answer']:.1f} s) "
          f"(10 s windows {windows['min']}-{windows['max']}, "
          f"1 s {seconds['min']}-{seconds['max']})"
          + (f", max backlog {load['max_backlog']}" if load["max_backlog"] is not None else "")
          + (f"; {load['of_bench_peak']}x make bench's peak {load['bench_peak_rps']:.0f}/s"
             if load["of_bench_peak"] else ""))
    print("latency   "
          + (f"from due p50 {due['p50_ms']} p99 {due['p99_ms']} max {due['max_ms']} ms; "
             if due else "")
          + f"from send p50 {sent['p50_ms']} p99 {sent['p99_ms']} max {sent['max_ms']} ms")
    print(f"answers   {load['answered']} answered, {load['accepted']} accepted (200), "
          f"{load['non_200']} non-200 {load['non_200_statuses'] or ''}, "
          f"errors {load['errors'] or 0}, "
          f"unknown outcome {load['unknown_outcome']}, never sent {load['never_sent']}")
    print(f"rollups   {roll['rollup_events']} in daily_rollups, {roll['raw_events']} raw events, "
          f"{roll['accepted']} accepted: {'EQUAL' if roll['equal'] else 'DIFFERENT'} "
          f"(settled {roll['settle_s']} s after the load)"
          + (f"; {roll['rollups_minus_accepted']:+} counted beyond the 200s "
             f"({load['non_200']} non-200, {load['unknown_outcome']} unanswered)"
             if roll["rollups_minus_accepted"] else ""))
    b = r["stream_backlog"]
    if b["bounded"] is not None:
        print(f"backlog   raw events in the streams, every {b['every_s']:.0f} s: min {b['min']} "
              f"mean {b['mean']} max {b['max']} last {b['last']}; last-half slope "
              f"{b['slope_last_half_per_s']}/s x {load['seconds']:.0f} s = "
              f"{b['trend_over_run']} (allowed {b['allowance']}); max middle third "
              f"{b['max_middle_third']}, last third {b['max_last_third']}: "
              + ("BOUNDED" if b["bounded"] else "GROWING"))
    print(f"live      {live['sockets']} sockets, {live['updates']} updates "
          f"({live['updates_per_socket_per_s']}/s per socket), "
          f"longest silence {live['max_silence_s']} s, "
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
              + ", ".join(f"{k} x{v['count']} (max {v['max_ms']} ms)"
                          for k, v in list(slow["by_command"].items())[:4]))
    cpu = r.get("cpu", {})
    if cpu:
        print(f"cpu       machine {cpu['machine_busy_percent']}% busy (of all cores); "
              "% of one core: "
              + ", ".join(f"{k} {v}" for k, v in cpu["percent_of_one_core"].items()))
        print(f"          rest of the machine by sample (% of one core): "
              f"{cpu['rest_of_machine_percent_of_one_core_by_sample']}")
    print(f"verdict   {r['verdict']}")


def markdown(r: dict) -> str:
    """The two tables of the Soak section of docs/performance.md, filled in."""
    st, load, roll, live = r["settings"], r["load"], r["rollups"], r["live"]
    lat = load["latency_from_due"] or load["latency_from_send"]
    backlog = r["stream_backlog"]
    if st["target_rate"] is None:
        target = "the peak (wrk, closed loop" + (
            f"; make bench: {st['peak_rps']:.0f}) | " if st["peak_rps"] else ") | ")
    else:
        target = f"{st['target_rate']:.0f} req/s " + (
            f"(half of {st['peak_rps']:.0f}) | " if st["peak_rps"] else "(--rate) | ")
    lines = [
        f"Run of {r['started']}: {st['duration_s']:.0f} s, {r['machine']['cores']} cores, "
        f"{st['sockets']} dashboards on {st['socket_tenants']} tenants.",
        "",
        "| what | target | measured |",
        "|---|---|---|",
        "| `/track` rate achieved (10 s windows min-max) | " + target
        + f"{load['achieved_rate']:.0f} req/s " + (
            f"({load['window_rate']['min']:.0f}-{load['window_rate']['max']:.0f}) |"
            if load["window_rate"]["min"] is not None else "|"),
        f"| latency from {'due time' if load['latency_from_due'] else 'send'} "
        f"p50 / p99 / max | | {lat['p50_ms']} / {lat['p99_ms']} / {lat['max_ms']} ms |",
        f"| non-200 answers / errors | 0 / 0 | {load['non_200']} / "
        f"{sum(load['errors'].values()) + load['unknown_outcome'] + load['never_sent']} |",
        f"| rollups (`daily_rollups` events) vs accepted (200) | equal | "
        f"{roll['rollup_events']} vs {roll['accepted']}: "
        f"{'equal' if roll['equal'] else 'DIFFERENT'}, stored {roll['settle_s']} s after |",
        "| stream backlog: min / mean / max; last-half slope x run; max of middle / last third "
        f"| trend and last third within {backlog['allowance']} | "
        f"{backlog.get('min')} / {backlog.get('mean')} / {backlog.get('max')}; "
        f"{backlog.get('slope_last_half_per_s')}/s x {st['duration_s']:.0f} s = "
        f"{backlog.get('trend_over_run')}; {backlog.get('max_middle_third')} / "
        f"{backlog.get('max_last_third')}: "
        f"{'bounded' if backlog['bounded'] else 'GROWING'} |",
        "| dashboards: updates received, reconnects, last frame current | "
        "0 reconnects, all current | "
        f"{live['updates']} ({live['updates_per_socket_per_s']}/s per socket), "
        f"{live['reconnects']}, {live['last_frame_matches_accepted']}/{live['sockets']} |",
        "",
        "| process | RSS start MB | middle MB | end MB | last-half growth MB "
        "| last-half slope MB/min |",
        "|---|---|---|---|---|---|",
    ]
    for label, m in r["memory"].items():
        lines.append(f"| {label} | {m['start_mb']} | {m['middle_mb']} | {m['end_mb']} | "
                     f"{m['last_half_growth_mb']:+} | {m['last_half_slope_mb_per_min']} |")
    return "\n".join(lines)
