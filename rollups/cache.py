"""An in-process cache whose entries hold only while a generation holds
(realtime/generations.py): what was read under generation G is served while the generation
read at the start of a request is still G, and read again otherwise. Nothing expires by
time; an entry is simply replaced when its generation moved on. Bounded: past `max_entries`
the entry filed longest ago goes first.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

MAX_ENTRIES = 10_000


class GenerationCache(Generic[V]):
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[bytes, V]] = {}

    def get(self, key: Hashable, generation: bytes) -> V | None:
        """What was filed under `key` at `generation`; None when nothing was, or it was
        filed under another generation."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != generation:
            return None
        return entry[1]

    def put(self, key: Hashable, generation: bytes, value: V) -> None:
        self._entries.pop(key, None)
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (generation, value)

    def discard(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
