"""Postgres side of the service: draining raw events, flushing counters, reading rollups."""
