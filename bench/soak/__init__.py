"""`make soak` (`python -m bench.soak`): the real processes at half the peak /track rate for
10 minutes, with dashboards.

Starts what `make bench` starts (bench/stack.py: the Procfile's `web` with production
settings and WEB_CONCURRENCY = cores, and the `scheduler`, in a database and key prefix of
their own) against a redis-server of its own (so its memory can be measured and nobody
else's keys or tests disturb it; `--shared-redis` uses REDIS_URL instead). Then:

    load        POST /track at a constant rate (bench/loadgen.py, open loop): half the
                peak of bench/results/latest.json (`ingest_c32`), or half of a short wrk
                run when there is none (`--measure-peak` forces it), or `--rate`;
                or, with `--peak`, wrk closed loop on 32 connections (bench/soak/peak.lua,
                bench/track.lua's mix), as fast as the service answers: the peak itself,
                with no generator in Python competing for the cores (bench/soak/peak.py).
                wrk counts what it sent by event type and every answer by status; past
                the duration it sends nothing more and ends once every answer is in, so
                what was answered 200 is checked as exactly as the generator's count
    dashboards  SOCKETS websockets on /live spread over SOCKET_TENANTS tenants, each
                reading every frame; those tenants get HOT_SHARE of the events, so the
                sockets see a steady stream of updates
    memory      resident memory (RSS) and CPU time of every process (uvicorn supervisor,
                each web worker, scheduler, private redis-server), Redis used_memory and
                the raw events waiting in the streams, every SAMPLE_EVERY seconds; the
                backlog in the streams alone every second too, for its verdict
    at the end  the load stops; the scheduler is left to drain and flush; then the sums of
                `daily_rollups` (every counter column, and per watched tenant), the raw
                `events` rows, GET /today of the watched tenants and the last frame of every
                dashboard are compared with what was answered 200

Everything is measured against a baseline taken just before the load starts (non-zero only
when a peak was measured first). The CPU of each process, of this database's Postgres
backends and of the rest of the machine (other people's work on a shared box) is recorded
too, so a dip in the rate can be told apart from a slower service.

Bounded backlog (checking.backlog_trend): the scheduler drains every FLUSH_INTERVAL_SECONDS,
so the backlog is a sawtooth at least one interval's arrivals tall; the allowance is one
interval's arrivals (the accepted rate times the interval). It is bounded when the
least-squares slope of the last half of the load, times the load's length, is within the
allowance (kept up as long again, the trend adds less than one interval's arrivals), and the
highest backlog of the last third is within the allowance of the middle third's (the teeth
do not grow). On 600 s that sees a drain short of the arrivals by 1/120 of them; a short
run sees less, and fails rather than passes when tall, slow teeth (a drain pass longer than
the interval) leave too few of them to tell from growth.

Writes bench/results/soak.json, prints a summary and the tables of the Soak section of
docs/performance.md; exits 1 when the counts disagree, when anything but 200 came back (or
nothing), when a dashboard reconnected or fell behind, when a process of the service grew by
more than `--flat-mb` over the last half, when the backlog was not bounded, or (not with
--peak) when the achieved rate was under 97% of the target. With --peak the achieved rate
is reported against make bench's peak (bench/results/latest.json).

    .venv/bin/python -m bench.soak [--duration 600] [--rate R | --peak] [--sockets 200]

The modules, in the order of a run:

    __main__.py       the command line
    orchestration.py  starts the processes, picks the rate, opens the dashboards, runs the load
                      while sampling, waits for the flush
    peak.py, peak.lua the load of --peak: wrk, its counts, in the shape of bench/loadgen.py's
    dashboards.py     one websocket reading every frame, reconnecting as the dashboard does
    sampling.py       memory, CPU, the streams' backlog and Redis's slow log, per process
    checking.py       rollups, raw events, /today and the dashboards' last frames against what
                      was accepted; the verdict
    reporting.py      the memory and CPU reports, results.json, the summary and the tables of
                      docs/performance.md
"""
