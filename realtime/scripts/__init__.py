"""Lua scripts, loaded from the files beside this module and registered once per client."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_HERE = Path(__file__).parent


@cache
def source(name: str) -> str:
    return (_HERE / f"{name}.lua").read_text()


def register(redis: Redis, name: str) -> AsyncScript:
    return redis.register_script(source(name))
