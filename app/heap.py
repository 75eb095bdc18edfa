"""Garbage collection for a long-running process.

What a process builds at startup (the country database, the user-agent rules, compiled
patterns, the framework's tables) lives as long as it does, and each full collection walked
all of it again: timed with `gc.callbacks` on a `web` worker under wrk's /track load at
c=32, collections took 12% of the worker's CPU, a third to a half of it in full ones. Inside
`long_lived()` that startup heap is frozen (kept out of every collection), and the youngest
generation is collected after 10,000 net new container objects rather than 700: a server's
requests free nearly everything they make by reference counting, so what crosses the
threshold is mostly in-flight state that a collection would only promote, not free.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_THRESHOLD = 10_000


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Freezes what is alive now and raises the youngest generation's threshold; restores
    both on exit (so what was frozen can be collected again, e.g. between tests)."""
    gc.freeze()  # not collected first: a few cycles of startup garbage cost less than a
    # full collection at every start (tests start hundreds of apps)
    previous = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
