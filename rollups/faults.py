"""Fault points: named steps of the drain and the flush where tests make a crash happen."""

from __future__ import annotations

from collections.abc import Callable

Fault = Callable[[str], None]


def no_fault(step: str) -> None:
    pass
