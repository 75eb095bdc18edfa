"""`python -m bench.soak`: the real processes under steady load, with dashboards, for a while.

The command line; bench/soak/__init__.py says what is measured and judged."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench.soak.orchestration import soak
from bench.stack import RESULTS


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, help="requests per second (default: half the peak)")
    parser.add_argument("--peak", action="store_true",
                        help="wrk, closed loop, as fast as the service answers, instead of a rate")
    parser.add_argument("--measure-peak", action="store_true",
                        help="measure the peak with wrk even when latest.json has one")
    parser.add_argument("--peak-seconds", type=int, default=10)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--socket-tenants", type=int, default=10)
    parser.add_argument("--hot-share", type=float, default=0.1,
                        help="share of the events sent to the dashboards' tenants")
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--connections", type=int,
                        help="load generator connections (default 64; 32 with --peak, as "
                             "make bench measures the peak)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--flat-mb", type=float, default=5.0,
                        help="largest last-half RSS growth of a process still called flat")
    parser.add_argument("--settle-timeout", type=float, default=180)
    parser.add_argument("--shared-redis", action="store_true",
                        help="use REDIS_URL, not a private redis-server")
    parser.add_argument("--out", default=str(RESULTS / "soak.json"))
    args = parser.parse_args()
    if args.socket_tenants < 1 or args.sockets < 1:
        parser.error("--sockets and --socket-tenants must be at least 1")
    if args.peak and (args.rate or args.measure_peak):
        parser.error("--peak drives as fast as the service answers: no --rate or --measure-peak")
    if args.connections is None:
        args.connections = 32 if args.peak else 64
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
