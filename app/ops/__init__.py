"""The processes and operations: the `analytics` command line, the scheduler process, the
demo seed and the schema migrations (numbered SQL files under migrations/).

May import anything in app (but routes), rollups and realtime.
"""
