"""Drain and flush into Postgres: exact numbers across days and time zones, crashes at any
step, several flushers and schedulers at once."""
