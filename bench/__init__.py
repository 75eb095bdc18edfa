"""The benchmarks: `make bench` (`python -m bench.run`, then `python -m bench.report`) and
`make soak` (`python -m bench.soak`), each piece also runnable on its own as `python -m bench.X`
from the repository root. They drive the real processes on loopback ports; the process helpers
(free ports, readiness, uvicorn, a private redis-server) are the tests' own, from
tests/support/servers.py. May import app, realtime, rollups and tests.support."""
