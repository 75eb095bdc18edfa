"""`eventually()`: the one way a test waits for something another task or process does."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(condition: Callable[[], Any | Awaitable[Any]], timeout: float,
                     interval: float = 0.05, what: str = "the condition") -> Any:
    """Calls `condition` (plain or async) every `interval` s until it returns something true,
    and returns that; fails the test after `timeout` s. An exception `condition` raises ends
    the wait at once, so it can also assert what must never happen meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return held
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        await asyncio.sleep(interval)
