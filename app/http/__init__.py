"""HTTP plumbing shared by the routes: errors and the store-failure answer, authorization,
CSRF, fixed headers, the tenant a route names, the OpenAPI provider and the /track fast path.

May import app.accounts, app.services, app.clients and realtime; never app.routes (except
the fast path, which serves the track route's endpoint).
"""
