"""Accounts, as dataclasses and free async functions taking a connection first: tenants (and
the in-process directory /track checks), users, login sessions, API tokens, the login
throttle. SQL lives here.

May import realtime (keys); never app.http, app.routes or app.ops.
"""
