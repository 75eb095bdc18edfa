"""The test suite: real Redis and Postgres, a database and key prefix of each run's own.

One folder per area (ingest, rollups, live, web, cli, faults, browser); the helpers every
area imports are in support/, the fixtures in conftest.py."""
