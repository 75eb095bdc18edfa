"""Fixtures of the whole-system tests."""

from __future__ import annotations

import pytest

from tests.support.servers import PostgresServer, postgres_binary


@pytest.fixture
def own_postgres():
    if postgres_binary("pg_ctl") is None or postgres_binary("initdb") is None:
        pytest.skip("needs PostgreSQL's initdb and pg_ctl")
    server = PostgresServer().start()
    yield server
    server.close()
