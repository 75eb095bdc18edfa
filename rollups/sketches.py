"""Unions of visitor sketches (Redis HyperLogLogs kept in Postgres), computed by Redis: any
number of groups in one call, so a read pays one round trip whatever its periods."""

from __future__ import annotations

from collections.abc import Sequence

from realtime import keys as k
from realtime.scripts import Scripts


async def _unions(scripts: Scripts, keys: k.Keys, tenant_id: int,
                  groups: Sequence[Sequence[bytes | None]], mode: str) -> list:
    groups = [[s for s in group if s] for group in groups]
    if not any(groups):
        return [0 if mode == "count" else b"" for _ in groups]
    shard = keys.shard_of(tenant_id)
    return await scripts.sketch_unions(
        keys=[keys.scratch(shard, i) for i in range(max(len(g) for g in groups))],
        args=[mode, len(groups), *(len(g) for g in groups), *(s for g in groups for s in g)],
    )


async def count_unions(scripts: Scripts, keys: k.Keys, tenant_id: int,
                       groups: Sequence[Sequence[bytes | None]]) -> list[int]:
    """The number of distinct members of each group's union of sketches (None: no sketch)."""
    return [int(n) for n in await _unions(scripts, keys, tenant_id, groups, "count")]


async def merge_unions(scripts: Scripts, keys: k.Keys, tenant_id: int,
                       groups: Sequence[Sequence[bytes | None]]) -> list[bytes | None]:
    """Each group's union as one sketch; None for a group without any."""
    return [s or None for s in await _unions(scripts, keys, tenant_id, groups, "sketch")]
