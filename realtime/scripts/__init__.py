"""Lua scripts, loaded from the files beside this module and registered once per client."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_HERE = Path(__file__).parent


@cache
def source(name: str) -> str:
    return (_HERE / f"{name}.lua").read_text()


@dataclass(frozen=True)
class Scripts:
    """Every script of the service, each named after its file."""

    track: AsyncScript
    flush_claim: AsyncScript
    flush_done: AsyncScript
    merge_sketch: AsyncScript
    reseed_totals: AsyncScript
    sketch_unions: AsyncScript
    live_snapshot: AsyncScript
    renew_generations: AsyncScript

    @classmethod
    def load(cls, redis: Redis) -> Scripts:
        return cls(**{f.name: redis.register_script(source(f.name)) for f in fields(cls)})
