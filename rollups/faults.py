"""Fault points: named steps of the drain and the flush where tests make a crash happen.

The drain's steps, in order: `read` (entries delivered to this consumer, nothing stored),
`uncommitted` (inserted inside the transaction, not yet committed), `inserted` (committed,
not yet acknowledged). The flush's: `claimed`, `merged`, `applied`, `reseeded` (see
rollups.flush). The count of the breakdown queue's: `counted` (taken off the queue and
counted, not yet committed; rollups.breakdown_queue).
"""

from __future__ import annotations

from collections.abc import Callable

Fault = Callable[[str], None]


def no_fault(step: str) -> None:
    pass
