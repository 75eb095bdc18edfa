"""The Redis side: every key (keys.py), the Lua scripts (scripts/), the one table of event
types (event_types.py), validating a /track body (validation.py), ingesting an event in one
script call (ingest.py), the raw stream entry's codec (stream.py), the tenant's local day
(days.py), address hashing (privacy.py), crawler detection (bots.py), live snapshots
(snapshots.py) and their fan-out to sockets (broadcast.py).

Plain functions and small classes taking their Redis client, keys and `now` as parameters.
Imports nothing of app/ or rollups/.
"""
