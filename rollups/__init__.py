"""The Postgres side: draining raw events from the streams (drain.py), flushing counters and
sketches into daily rollups exactly once (flush.py), both at once (cycle.py), reading the
rollups (summaries.py) and the recent-events feed (feed.py), repair (rebuild.py), retention
(retention.py), the shard locks (locks.py) and the named fault points tests use (faults.py).
SQL lives here, beside the code that runs it.

May import realtime/ (keys, scripts, the event-type table, the stream codec); never app/.
"""
