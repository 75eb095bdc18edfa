"""Redis side of the service: keys, Lua scripts, ingestion, live counters and pub/sub."""
