"""The wiring and the three ways in: the web app (factory.py, asgi.py, routes/), the
`analytics` command line and the scheduler process (ops/).

Top level: settings.py (the one settings object), clients.py (the one bundle of Redis and
Postgres clients), services.py (what a web process holds), logs.py. Imports rollups and
realtime; neither of them imports app.
"""
