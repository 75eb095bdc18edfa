"""Helpers the tests import (never from conftest.py): the run's settings, requests as clients
make them, apps in the test's loop, `eventually()`, and real processes (servers, a local
Redis Cluster, the outage harness, the browser tests' shop)."""
