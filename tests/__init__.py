"""The test suite: real Redis and Postgres, a database and key prefix of each run's own."""
