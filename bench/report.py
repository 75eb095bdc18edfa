"""Turns bench/results/latest.json into docs/performance.md and docs/throughput.png.

The page's "## Soak" section (`make soak`, filled in by hand) is carried over unchanged.

    .venv/bin/python -m bench.report
"""

from __future__ import annotations

import json
import re
import textwrap

from app.settings import Settings
from bench import targets
from bench.stack import FLUSH_INTERVAL_SECONDS, RESULTS, ROOT
from bench.targets import figure, held_in_all, judged, last_runs, lookup

LATEST = RESULTS / "latest.json"
# bench/persistence.py run on its own, for a latest.json from before it was part of the bench.
PERSISTENCE = RESULTS / "persistence.json"
# bench/reads.py likewise.
READS = RESULTS / "reads.json"
# bench/insights.py run on its own, likewise.
INSIGHTS = RESULTS / "insights.json"
DOC = ROOT / "docs" / "performance.md"
PLOT = ROOT / "docs" / "throughput.png"


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = results["sweep"]
    connections = [row["connections"] for row in sweep]
    fig, (rps, p99) = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (("track", "o-"), ("bare", "s--")):
        label = "/track" if name == "track" else "bare Quart route"
        rps.plot(connections, [row[name]["rps"] for row in sweep], style, label=label)
        p99.plot(connections, [row[name]["p99_ms"] for row in sweep], style, label=label)
    rps.set(xscale="log", xlabel="concurrent connections", ylabel="requests / s",
            title="Throughput")
    p99.set(xscale="log", yscale="log", xlabel="concurrent connections", ylabel="p99 latency (ms)",
            title="p99 latency")
    for axis in (rps, p99):
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def table(rows: list[list], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def note(text: str) -> list[str]:
    """A bullet of the notes, wrapped as the page's lines are."""
    return textwrap.wrap(text, width=88, initial_indent="- ", subsequent_indent="  ",
                         break_on_hyphens=False)


PAUSED = "track, scheduler paused"


def paused_note(ingest: dict) -> list[str]:
    """What the web path reaches alone, where the run measured it."""
    if PAUSED not in ingest:
        return []
    cost = ingest["cpu_us_per_request"]
    return note(
        "Where the gap to the bare route lies: in rounds interleaved with the others, "
        "/track with the scheduler stopped while wrk runs (its events wait in the streams, "
        "and their drain and flush are settled and billed after the round, as in every "
        f"/track round) reached {ingest[PAUSED]['rps']:.0f} req/s, "
        f"{ingest['ratio_rps_scheduler_paused']}x the bare route, against "
        f"{ingest['ratio_rps']}x with the scheduler running. A /track request cost its "
        f"worker {cost[PAUSED]['web workers']} us that way against the bare route's "
        f"{cost['bare']['web workers']}. The difference between the two /track figures is "
        "the share of the cores the scheduler and Postgres take while a round runs "
        f"({cost['track']['scheduler']} and {cost['track']['postgres']} us an event here), "
        "draining, counting the breakdowns (from their queue, every "
        f"{Settings.breakdown_interval:.0f} s) and flushing (section \"Drain\"). The same mix "
        "drained "
        "after a paused round, as one backlog in full batches rather than a pass's worth "
        f"every {FLUSH_INTERVAL_SECONDS} s, cost them {cost[PAUSED]['scheduler']} and "
        f"{cost[PAUSED]['postgres']} us an event. Larger batches are the likely reason "
        "(each batch's fixed statements, and breakdown rows shared by more of a tenant's "
        "events), not measured apart.")


def ingest_notes(ingest: dict) -> list[str]:
    """Why the two ingest targets are missed, with the run's own figures."""
    if "cpu_us_per_request" not in ingest:
        return []
    share, cost = ingest["cpu_percent_of_a_core"], ingest["cpu_us_per_request"]
    track, bare = cost["track"], cost["bare"]
    return [
        *paused_note(ingest),
        *note(
            "`/track` against the bare route: each /track round is followed by the scheduler "
            "settling its events (drained into Postgres, counters flushed), billed to the "
            "round's requests; the bare rounds start settled. On 2 cores the scheduler, Redis "
            "and Postgres take their share of the machine while a /track round runs (the "
            f"table below): the web workers got {share['track']['web workers']}% of a core "
            f"where the bare route's got {share['bare']['web workers']}%, though a /track "
            f"request cost its worker {track['web workers']} us against the bare route's "
            f"{bare['web workers']}. For /track to match the bare route here, everything an "
            "event costs (web, Redis, scheduler, Postgres) would have to fit in what the bare "
            "request costs its worker alone. Tried and left: two script calls on their way at "
            "once per worker (`track_batches_in_flight`), four interleaved rounds each: 6,602 "
            "against 6,234 req/s, inside the rounds' spread (5,520-6,753); and five fewer "
            "`redis.call`s an event in `track.lua` (a rate zset trimmed only past 32 entries, "
            "TTLs set when a key is made, the dirty set joined with a new pending hash), four "
            "interleaved rounds on 2026-11-30: Redis's CPU per event 55.7 against 54.9 us, "
            "so Redis's share is the commands' own work and the socket, not the script's calls."),
        *note(
            f"CPU per accepted event, {ingest['cpu_us_per_event_whole_system']} us here "
            f"(web workers {track['web workers']}, Redis {track['redis-server']}, scheduler "
            f"{track['scheduler']}, Postgres {track['postgres']}), moves with the machine more "
            "than with the code: the bare route's worker, whose code never changes, spent "
            f"{bare['web workers']} us a request in this run, against 163 at 09:36 and 481 at "
            "06:21 on 2026-11-30, when the whole system took 294 and 1,085-1,251 us an event. "
            "What the drain costs is measured apart from the machine's load, old code against "
            "new, in the section \"Drain\" below. The web workers are "
            f"{round(100 * track['web workers'] / ingest['cpu_us_per_event_whole_system'])}% "
            "of it. Their profile (`bench/results/profile-track-c32.txt`) counts wall-clock "
            "samples: the answer's write wakes wrk, and the worker often loses its core right "
            "there, which puts a quarter to a third of the samples in uvicorn's `send`. By CPU "
            "(one worker, c=32, a probe stopping each request at a stage, three interleaved "
            "rounds on 2026-11-30, a request cost 101-111 us in all): 36 us to read the "
            "request and answer it with nothing done, 51 with the body validated and the "
            "tenant looked up, and, timed inside the worker, 20 us more to prepare the event "
            "(its country 6-7, the visitor's HMAC 4); the rest is the batch's script call. "
            "Each answer now leaves in one write rather than two (`app/http/http_protocol.py`, "
            "the bare route too): 7 us less a /track request, 108 against 101 us, four "
            "interleaved rounds."),
    ]


def persistence_section(results: dict) -> list[str]:
    """`/track` with and without Redis's append-only file (bench/persistence.py)."""
    aof = results.get("persistence")
    if aof is None and PERSISTENCE.exists():
        aof = json.loads(PERSISTENCE.read_text())
    head = ["## Redis persistence (`/track` with and without the append-only file)", ""]
    if aof is None:
        return [*head, "Not measured.", ""]
    median = aof["median"]
    return [
        *head,
        f"`/track` at c={aof['connections']} against a redis-server of its own started from "
        "`deploy/redis.conf`, the append-only file turned off (`CONFIG SET appendonly no`) and "
        "on, with `appendfsync everysec` (production's) and `always`, between interleaved "
        "rounds, the same processes and data otherwise "
        f"(`bench/persistence.py`; {aof['rounds']} rounds of {aof['seconds_per_run']} s, "
        f"median, {aof['started']}, the machine shared with other work):",
        "",
        table([["no", "", *row(median["off"]), "1", each(aof["runs"]["off"])],
               ["yes", "everysec", *row(median["everysec"]), aof["ratio_rps_to_off"]["everysec"],
                each(aof["runs"]["everysec"])],
               ["yes", "always", *row(median["always"]), aof["ratio_rps_to_off"]["always"],
                each(aof["runs"]["always"])]],
              ["appendonly", "appendfsync", "req/s", "p50 ms", "p99 ms", "non-2xx",
               "Redis CPU us per request", "req/s vs off", "req/s of each round"]),
        "",
        "Where the rounds of one setting spread wider than the settings differ, the machine's "
        "other work decided more than the setting did; Redis's CPU per request is the steadier "
        "figure.",
        "",
        "With production's setting Redis writes each reply's commands to the file before the "
        "reply goes out (its CPU per request above) and fsyncs once a second in a thread of "
        "its own, so no request waits for the disk; with `always` every reply waits for an "
        "fsync (one per event-loop turn, shared by the replies of that turn).",
        "",
    ]


def batches_section(results: dict) -> list[str]:
    """How /track's events travelled to Redis (realtime/batching.py), at c=32 and c=1."""
    runs = results.get("batches")
    if not runs:
        return []
    rows = [[run["connections"], f"{run['load']['rps']:.0f}", run["load"]["p50_ms"],
             run["batches"].get("calls", 0), run["batches"].get("events_per_call", "n/a"),
             run["batches"].get("event_p50", "n/a"), run["batches"].get("event_p90", "n/a"),
             run["batches"].get("max", "n/a"), f"`{run.get('profile', 'n/a')}`"]
            for run in runs]
    return [
        "Micro-batches: the events a worker takes in at the same moment go to Redis in one "
        "`track.lua` call (`realtime/batching.py`). A fresh `web` under the same load, each "
        "row started from a settled scheduler (at c=32 "
        "with py-spy sampling its workers, so its req/s there are lower than above); the "
        "batch sizes are weighted by event (the p50 is the batch the median event travelled "
        "in):",
        "",
        table(rows, ["connections", "req/s", "p50 ms", "script calls",
                     "events a call", "p50 event's batch", "p90", "largest", "flame summary"]),
        "",
    ]


def summary_vs_bare(results: dict) -> dict | None:
    """GET summary against the bare route (bench/reads.py), from this run or on its own."""
    found = results.get("summary_c16")
    if found is None and READS.exists():
        found = json.loads(READS.read_text())
    return found


def summary_section(reads: dict | None) -> list[str]:
    head = ["## GET summary against a bare Quart route returning the same JSON", ""]
    if reads is None:
        return [*head, "Not measured.", ""]
    median = reads["median"]
    return [
        *head,
        f"`GET /api/analytics/{{id}}` of a tenant with a week of rollups, each day with its "
        "own visitor sketch (the read's worst case), against `bench/bare.py`'s route that "
        f"sends the same {reads['body_bytes']} bytes, wrk at c={reads['connections']}, "
        f"interleaved ({reads['rounds']} rounds of {reads['seconds_per_run']} s, median, "
        f"{reads['started']}; `bench/reads.py`):",
        "",
        table([[name, f"{median[name]['rps']:.0f}", median[name]["p50_ms"],
                median[name]["p99_ms"], median[name]["non_2xx"], each(reads["runs"][name]),
                ", ".join(str(run["p99_ms"]) for run in reads["runs"][name])]
               for name in ("summary", "bare")],
              ["server", "req/s", "p50 ms", "p99 ms", "non-2xx", "req/s of each round",
               "p99 ms of each round"]),
        "",
        "A repeated read makes one Redis round trip (an MGET of the tenant's two generations, "
        "`realtime/generations.py`) and no Postgres query: the answer's bytes and the bearer "
        "token are kept in the process under the tenant's rollups and credentials generations "
        "(`app/http/reads.py`), which every flush and every revocation renews, and "
        "`app/http/read_fastpath.py` sends them ahead of Quart. A read that misses goes "
        "through Quart, two Postgres queries and, with more than one sketch, the union in "
        "Redis, as before. Before these caches (b08eeda, the same bench, three runs "
        "interleaved with runs of the caches on the same machine) every read took that path: "
        "0.077x, 0.094x and 0.093x of the bare route, p99 165, 145 and 138 ms.",
        "",
        *([f"The workers' flame summary over one more run of the summary: "
           f"`{reads['profile']}`.", ""] if reads.get("profile") else []),
    ]


def insights_of(results: dict) -> dict | None:
    found = results.get("insights")
    if found is None and INSIGHTS.exists():
        found = json.loads(INSIGHTS.read_text())
    return found if found and "spans" in found["results"][0] else None


def uncached_p99s(results: dict) -> str:
    """The p99 of the 30-day `/stats` and `/breakdown/page` with every request reading
    Postgres."""
    found = insights_of(results)
    if not found:
        return "not measured"
    p99 = {r["read"]: r["uncached"]["p99_ms"] for r in found["results"] if "uncached" in r}
    return " and ".join(f"{p99[read]} ms" for read in ("stats?period=30d",
                                                       "breakdown/page?period=30d")
                        if read in p99) or "not measured"


def target_rows(results: dict) -> list[list]:
    """Each target of bench/targets.py as this run measured it, with what lies behind its
    figure."""
    ingest = results["ingest_c32"]
    summary = summary_vs_bare(results)
    under_load = results.get("live_under_load", {})
    loaded = under_load.get("track_response_to_update")
    most = lookup(results, "idle_websockets", "most")
    insights = {r["read"]: r["spans"]
                for r in (insights_of(results) or {}).get("results", []) if "spans" in r}

    def insight(read: str) -> str | None:
        found = insights.get(read)
        return found and (f"{found['p99_ms']} ms (median {found['p50_ms']} ms, "
                          f"{found['req_per_s']:.0f} req/s)")

    details = {
        targets.TRACK: f"{ingest['ratio_rps']}x ({ingest['track']['rps']:.0f} vs "
                       f"{ingest['bare']['rps']:.0f} req/s)",
        targets.SUMMARY: summary and (
            f"{summary['ratio_rps']}x ({summary['median']['summary']['rps']:.0f} vs "
            f"{summary['median']['bare']['rps']:.0f} req/s)"),
        targets.SUMMARY_P99: summary and (
            f"{summary['median']['summary']['p99_ms']} ms (the bare route's "
            f"{summary['median']['bare']['p99_ms']} ms)"),
        targets.LIVE: loaded and (
            f"{loaded['p99_ms']} ms in the worst round (median {loaded['median_ms']} ms, "
            f"{loaded['samples']} deliveries)" +
            (f"; each round: {', '.join(str(p) for p in under_load['p99_ms_each_round'])} ms"
             if "p99_ms_each_round" in under_load else "")),
        targets.SOCKETS_10K: most and f"{most['rss_mb']} MB ({most['kb_per_socket']} KB each)",
        targets.STATS_30D: insight("stats?period=30d"),
        targets.BREAKDOWN_30D: insight("breakdown/page?period=30d"),
    }
    # The flame summaries behind the figures, where the run made one.
    track_profile = next((run.get("profile") for run in results.get("batches", [])
                          if run["connections"] == 32), None)
    profiles = {targets.TRACK: track_profile, targets.CPU_PER_EVENT: track_profile,
                targets.SUMMARY: summary and summary.get("profile"),
                targets.SUMMARY_P99: summary and summary.get("profile"),
                targets.LIVE: under_load.get("profile")}

    def shown(t: targets.Target) -> str:
        text = details.get(t) or figure(t, results) or "not measured"
        return f"{text}; profile `{profiles[t]}`" if profiles.get(t) else text

    return [[t.what, t.goal, shown(t)] for t in targets.TARGETS]


def insights_section(results: dict) -> list[str]:
    """30-day reads of a tenant at its rate limit all month (bench/insights.py)."""
    found = insights_of(results)
    head = ["## Insights reads (`/stats` and breakdowns over 30 days, `bench/insights.py`)", ""]
    if found is None:
        return [*head, "Not measured.", ""]
    modes = (("spans, a tenant still sending", "spans"), ("spans, uncached", "uncached"),
             ("days alone, uncached", "days_only"))
    rows = [[f"`{r['read']}`", mode, r[key]["req_per_s"], r[key]["p50_ms"], r[key]["p99_ms"]]
            for r in found["results"] for mode, key in modes if key in r]
    return [
        *head,
        "A tenant that sent at its rate limit all month (100 events a minute, "
        f"{found['events_per_day']:,} a day), with {found['visitors_per_day']:,} visitors a "
        "day: 60 daily rows with their visitor and leads sketches (the 30 days and the 30 "
        "before) and breakdown rows at the cap (1,000 pages a day, 8 values a day for every "
        "other dimension), then the spans the scheduler builds over the days that are over "
        "(`rollups/spans.py`: blocks of 2 to 256 days, whole months, and the part of each "
        "named period before today). Driven in process (Quart's test client, no HTTP "
        f"parsing), concurrency {found['concurrency']}, {found['requests']} requests per "
        f"read after 24 at the same concurrency to warm up (the pool opens its connections), "
        "three ways, interleaved, median of "
        f"{found['rounds']} rounds, {found['started']}: with the spans, the tenant still "
        "sending (its rollups generation renewed every second, as each drain and flush of "
        "its events renews it, so an answer comes from the process's cache between "
        "renewals, and the requests that miss together after each make one read); the "
        "same with every request reading Postgres; and from the days alone (the spans set "
        "aside, as for days not yet in one), every request reading Postgres:",
        "",
        table(rows, ["read", "from", "req/s", "p50 ms", "p99 ms"]),
        "",
        "With the spans a 30-day `/stats` unions two sketches per total (the 29 days before "
        "today, one span, and today) and the period before is one span; a 30-day breakdown "
        "sums 2,000 rows rather than 30,000. \"Days alone\" is the worst case, no span "
        "at all; in the minutes after a tenant's midnight, until the scheduler's job "
        "(every 10 minutes) builds the new day's period spans, or after a late write to an "
        "old day, reads still find the blocks and months that hold, about five pieces for 30 "
        "days.",
        "",
    ]


SOCKET_VARIANTS = {
    "serve": "`analytics serve`: websockets-sansio, permessage-deflate declined",
    "sansio+deflate": "websockets-sansio, permessage-deflate accepted (uvicorn's default)",
    "wsproto": "wsproto, no deflate",
    "websockets": "websockets (legacy protocol), no deflate",
}


def idle_sockets_section(sockets: dict | None) -> list[str]:
    if not sockets:
        return ["Idle dashboards: not measured.", ""]
    if not isinstance(sockets.get("kb_per_socket"), dict):  # a latest.json of before
        return [f"Idle dashboards: {sockets['kb_per_socket']} KB of resident memory per idle "
                f"websocket ({sockets['sockets']} sockets on the web workers).", ""]
    lines = [
        f"Idle dashboards (`bench/sockets.py`): the resident memory one worker gains per idle "
        f"websocket with {sockets['sockets']:,} open (opened by a client that offers "
        f"permessage-deflate, as browsers do), each uvicorn option on a fresh server, "
        f"interleaved, median of {sockets['rounds']} rounds:",
        "",
        table([[SOCKET_VARIANTS.get(name, name), kb,
                ", ".join(str(x) for x in sockets["kb_per_socket_each_round"][name]),
                sockets.get("cpu_us_per_frame", {}).get(name, "n/a")]
               for name, kb in sockets["kb_per_socket"].items()],
              ["server", "KB per socket", "each round", "worker CPU us per update frame sent"]),
        "",
        "CPU per frame: with the sockets open, ten events one throttle period apart, each sent "
        "to every socket as an update; the worker's CPU over that time divided by the frames.",
        "",
    ]
    if "most" in sockets:
        most = sockets["most"]
        lines += [f"{most['sockets']:,} dashboards on one `analytics serve` worker: "
                  f"{most['rss_mb']} MB resident ({most['kb_per_socket']} KB each).", ""]
    return lines


def consecutive_section() -> list[str]:
    runs = last_runs(3)
    if not runs:
        return []
    header = ["target", "goal",
              *(f"{run['started'][:16]}{' (targets only)' if run.get('targets_only') else ''}"
                f"{', ' + run['commit'] if run.get('commit') else ''}"
                for run in runs),
              "held in all three"]
    return [
        "## Targets in the last three runs",
        "",
        "Each target in each of the last three runs of `make bench` or "
        "`python -m bench.run --targets` (bench/results/runs/, bench/targets.py), one after "
        "the other on the same machine; each column names the commit it ran, where the run "
        "recorded it:",
        "",
        table([[t.what, t.goal, *(judged(t, run) for run in runs), held_in_all(t, runs)]
               for t in targets.TARGETS], header),
        "",
    ]


def each(runs: list[dict]) -> str:
    return ", ".join(f"{run['rps']:.0f}" for run in runs)


def row(measured: dict) -> list:
    return [f"{measured['rps']:.0f}", measured["p50_ms"], measured["p99_ms"], measured["non_2xx"],
            measured.get("redis_cpu_us_per_request", "n/a")]


def render(results: dict) -> str:
    ingest = results["ingest_c32"]
    reads = results["reads_c16"]
    live = results.get("live", {})
    memory = results.get("memory_after_runs", {})
    flush = results["flush"]
    under_load = results.get("live_under_load", {})
    summary = summary_vs_bare(results)
    # "track, scheduler paused": runs since 2026-12-01 also measure the web path alone.
    servers = [name for name in ("track", PAUSED, "bare") if name in ingest]
    parts = [
        "# Performance",
        "",
        "Measured by `make bench` (`python -m bench.run`, then `python -m bench.report` writes "
        "this page) on "
        f"{results['machine']['cores']} shared cores, {results['started']}. The real processes "
        "run with production settings: the Procfile's `web` (uvicorn, uvloop, httptools "
        "with each response in one write, `app/http/http_protocol.py`, "
        f"{results['machine']['workers_per_server']} workers; the bare route is served the "
        "same way), the `scheduler`, Redis and "
        "Postgres on the same machine as the load generator (wrk, one thread). Numbers drift "
        "20-30% between runs on these machines, so targets are ratios within one run, "
        "interleaved, median of the rounds.",
        "",
        "## Targets",
        "",
        table([
            *target_rows(results),
            ["GET endpoints p99 at c=16", "< 20 ms",
             f"{reads['p99_ms']} ms ({reads['rps']:.0f} req/s)"],
            ["flush of 10,000 changed tenant-days", "< 2 s",
             next((f"{r['flush_s']} s" for r in flush if r["tenant_days"] == 10_000), "n/a")],
            ["Postgres queries / Redis round trips per accepted `/track`", "0 / 1",
             "0 / 1 (by construction, `realtime/scripts/track.lua`)"],
        ], ["what", "target", "measured"]),
        "",
        "Where a target is missed, why:",
        "",
        *ingest_notes(ingest),
        *note("The flush of 10,000 tenant-days (`bench/flush.py`) moves with the machine too: "
              + next((f"{r['flush_s']} s here, " for r in flush if r["tenant_days"] == 10_000),
                     "")
              + "0.80 s at 09:36 and 2.15 s at 06:21 on 2026-11-30."),
        *note("30-day reads: a dashboard's repeated read comes from its process under the "
              "tenant's rollups generation (`app/http/reads.py`), renewed by each drain and "
              "flush of the tenant's events, and the requests that miss together after a "
              "renewal share one read; the target rows measure that, with the generation "
              "renewed every second. With every request reading Postgres (\"uncached\" in "
              "the insights section) the p99 at c=8 was " + uncached_p99s(results) + " here, "
              "16.8 and 26.9 ms at 09:36 on 2026-11-30, and 59 and 71 ms at 06:21 on a "
              "machine 3x slower: a 30-day `/breakdown/page` sums 2,000 rows of the cap's 1,000 "
              "pages and ranks them, and eight at once share two cores with the handler."),
        *note("Live delay: each tenant's snapshots come from a token bucket (four at once, "
              "then four a second), so a lone event, or a few close together, go out at once "
              "and only a sustained burst is paced. The worst case below, 500 sockets on ONE "
              "tenant with events paced to land inside the bucket's refill, shows the pacing "
              "(p99 about 250 ms); the target's setting spreads the sockets over 50 tenants "
              "while `bench/loadgen.py` sends half the peak `/track` rate (of the same run) over"
              " all 10,000 tenants. The bucket held two until 2026-12-02: a probe then met an "
              "empty one when two other snapshots of its tenant (its background events, the "
              "10 s refresh) had gone out in the 250 ms before it, about one probe in 130, and "
              "waited for the refill, up to 250 ms; one such probe is a round's p99 (its "
              "tenant's ten sockets are 1% of the round's samples). In 28 rounds of 100 "
              "probes with two (`bench/live_load.py`'s rounds, 2026-12-02 from 17:25 UTC), "
              "three rounds' p99 passed 100 ms (101.9, 114.1 and 191.7 ms) and seven probes "
              "took longer than that; in the 8 rounds with the bucket's waits logged in the "
              "workers, every probe above 80 ms had waited. With four, 12 rounds right after, "
              "at a higher background rate (2,960 against 2,230-2,350 events/s): no probe "
              "waited, worst round 56.7 ms, slowest probe 99.4 ms."),
        *note("Idle websockets: the live socket is served ahead of Quart "
              "(`app/http/live_fastpath.py`, one credential check shared with Quart's routes in"
              " `app/http/auth.py`) by a subclass of uvicorn's websockets-sansio protocol that "
              "drops the handshake's request and response once open and keeps a list and a flag"
              " instead of an asyncio.Queue and Event (`app/http/ws_protocol.py`); "
              "permessage-deflate is declined (two zlib contexts a socket). What is left "
              "(tracemalloc, 1,000 sockets, about 15 KB each): uvicorn's protocol object, its "
              "keepalive timer, websockets' connection and reader, the server's task and the "
              "scope (about 5 KB); the socket's own frames, its reader task, the heartbeat's "
              "timeout and the recheck timer (about 3 KB); the fast path's frame and the "
              "credentials read (1.4 KB); uvloop's transport (1.3 KB). The other uvicorn "
              "options (table below) run uvicorn's stock websocket protocols."),
        "",
        *consecutive_section(),
        "## Ingest (`POST /api/analytics/track`, 10,000 tenants, 100,000 visitors)",
        "",
        table([[name, f"{ingest[name]['rps']:.0f}", ingest[name]["p50_ms"], ingest[name]["p99_ms"],
                ingest[name]["non_2xx"]] for name in servers],
              ["server", "req/s", "p50 ms", "p99 ms", "non-2xx"]),
        "",
        "CPU of the interleaved c=32 rounds: % of one core while the load ran, and in "
        "brackets CPU microseconds per request, counting after each /track round until the "
        "scheduler had drained its events into Postgres and flushed their counters (" +
        (", ".join(f"{s} s" for s in ingest["settle_seconds_after_each_track_round"])
         if "settle_seconds_after_each_track_round" in ingest else "not measured") +
        " after each round), so what the events cost is all in, even when the drain fell "
        "behind during the round:",
        "",
        table([[group, *(f"{ingest['cpu_percent_of_a_core'][name][group]}% "
                         f"({ingest['cpu_us_per_request'][name][group]} us)"
                         for name in servers)]
               for group in ingest["cpu_percent_of_a_core"]["track"]],
              ["process", *servers]) if "cpu_percent_of_a_core" in ingest else "",
        "",
        *batches_section(results),
        "![throughput and p99 against concurrency](throughput.png)",
        "",
        table([[row["connections"], f"{row['track']['rps']:.0f}", row["track"]["p99_ms"],
                f"{row['bare']['rps']:.0f}", row["bare"]["p99_ms"]] for row in results["sweep"]],
              ["connections", "/track req/s", "/track p99 ms", "bare req/s", "bare p99 ms"]),
        "",
        *persistence_section(results),
        "## Flush (changed tenant-days, 2 events each)",
        "",
        table([[r["tenant_days"], r["events"], r["drain_s"], r["flush_s"],
                r["flush_redis_round_trips"], r["flush_pg_queries"]] for r in flush],
              ["tenant-days", "events", "drain s", "flush s", "flush Redis round trips",
               "flush Postgres queries"]),
        "",
        "Redis round trips grow by about "
        f"{flush[-1]['flush_redis_round_trips'] / flush[-1]['tenant_days'] * 100:.1f} per 100 "
        "tenant-days: each sketch-merge and reseed "
        "call takes at most 100, and each renewal of the tenants' generations 250, so none "
        "holds Redis long while `/track` waits (the claim stays one call per batch of up to "
        "5,000: a batch others can see must be complete); Postgres "
        "queries grow with batches of 5,000 tenant-days per shard (16 shards). The time grows "
        "linearly with the work per row.",
        "",
        "## Reads (`GET /api/analytics/{id}` and `/today`, alternately, c=16)",
        "",
        table([[f"{reads['rps']:.0f}", reads["p50_ms"], reads["p99_ms"], reads["non_2xx"]]],
              ["req/s", "p50 ms", "p99 ms", "non-2xx"]),
        "",
        *summary_section(summary),
        *insights_section(results),
        "## Live",
        "",
        "500 dashboards on 50 tenants while `/track` runs at half its peak (`bench/live_load.py`):",
        "",
        "```json",
        json.dumps(under_load, indent=2),
        "```",
        "",
        "Worst case, 500 dashboards on one tenant, no other load (`bench/live_latency.py`):",
        "",
        "```json",
        json.dumps(live, indent=2),
        "```",
        "",
        "## Memory after the runs (resident, MB)",
        "",
        table([[name, m["processes"], m["rss_mb"], ", ".join(str(x) for x in m["per_process_mb"])]
               for name, m in memory.items()], ["process", "processes", "total MB", "each MB"]),
        "",
        *idle_sockets_section(results.get("idle_websockets")),
        "## Reproduce",
        "",
        "```sh",
        "make bench          # about 6 minutes; writes bench/results/latest.json and this page",
        ".venv/bin/python -m bench.run --quick   # a one-round smoke run",
        ".venv/bin/python -m bench.compare --against COMMIT   # /track's CPU an event, "
        "this code against COMMIT's",
        "```",
        "",
    ]
    return "\n".join(parts)


def kept_sections(doc: str) -> str:
    """The sections of the current page filled in by hand ("## Drain" from `bench/drain.py`
    run against the code before, "## Soak" from `make soak`), kept as they are when the
    rest of the page is rewritten."""
    kept = ""
    for title in ("Drain", "Soak"):
        match = re.search(rf"^## {title}\b.*?(?=^## |\Z)", doc, re.S | re.M)
        kept += match[0].rstrip("\n") + "\n\n" if match else ""
    return kept


def main() -> None:
    results = json.loads(LATEST.read_text())
    DOC.parent.mkdir(exist_ok=True)
    plot(results)
    page = render(results)
    if DOC.exists():
        page = page.replace("## Reproduce\n", kept_sections(DOC.read_text()) + "## Reproduce\n", 1)
    DOC.write_text(page)
    print(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
