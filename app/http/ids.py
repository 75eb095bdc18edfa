"""Ids in URLs: whole numbers Postgres's `bigint` can hold, or the route does not match.

`IdConverter` replaces Werkzeug's `int` converter on the app (`app.factory`), so every
`<int:...>` route, today's and tomorrow's, answers an id past 2^63-1 with the usual JSON 404
instead of passing it to asyncpg, which fails on it (a 500).
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

from realtime.validation import MAX_TENANT_ID

MAX_ID = MAX_TENANT_ID  # Postgres bigint, the type of every id column


class IdConverter(IntegerConverter):
    """A non-negative whole number of at most 2^63-1 (Werkzeug refuses what `int()` cannot
    read, such as 5,000 digits, in the same way)."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = MAX_ID, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def register(app: Any) -> None:
    """Before any blueprint: a rule takes its converters when it is added."""
    app.url_map.converters["int"] = IdConverter
