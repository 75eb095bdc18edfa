"""The `analytics` command, run as an installed subprocess."""
