"""The whole system on many real processes (web, scheduler, private redis-server and
PostgreSQL); the tests that break one are marked `faults` and run with `make test-faults`."""
