"""The HTTP surface: one blueprint per route group, named after what it serves.

May import app.http (plumbing), app.accounts, app.services, rollups and realtime; nothing
here imports another route module.
"""
