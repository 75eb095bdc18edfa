"""Numbered SQL migrations, applied forward only, once, under an advisory lock."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_ID = 0x616E616C  # any constant shared by every process that migrates


def migrations() -> list[tuple[int, str, str]]:
    found = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        number = int(path.name.split("_", 1)[0])
        found.append((number, path.stem, path.read_text()))
    return found


async def ensure_database(dsn: str) -> bool:
    """Create the database DSN names when it does not exist yet; True when it was created."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name.replace(chr(34), "")}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            return False
        return True
    finally:
        await conn.close()


async def migrate(dsn: str) -> list[str]:
    """Apply what is missing; returns the names applied now."""
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_ID)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for number, name, sql in migrations():
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", number, name
                )
            applied.append(name)
        return applied
    finally:
        await conn.close()
