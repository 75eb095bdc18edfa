"""The web app factory: configuration, extensions, blueprints and the clients' lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from quart import Quart, Response
from quart_schema import QuartSchema

from app.accounts.sessions import SESSION_COOKIE, SESSION_LIFETIME
from app.clients import Clients
from app.heap import long_lived
from app.http import auth, csrf, errors, ids
from app.http.fastpath import TrackFastPath
from app.http.headers import security_headers
from app.http.live_fastpath import LiveFastPath
from app.http.openapi import OpenAPI
from app.http.read_fastpath import ReadFastPath
from app.routes import (
    breakdowns,
    docs,
    events,
    health,
    ingest_health,
    live,
    login,
    pages,
    platform,
    shares,
    stats,
    summary,
    team,
    tokens,
    track,
)
from app.services import Services
from app.settings import Settings
from realtime.validation import MAX_BODY_BYTES

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or Settings.from_env()
    app = Quart(__name__, template_folder="../web/templates", static_folder="../web/static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        QUART_AUTH_COOKIE_NAME=SESSION_COOKIE,
        QUART_AUTH_COOKIE_SECURE=settings.production,
        QUART_AUTH_COOKIE_SAMESITE="Lax",
        QUART_AUTH_COOKIE_HTTP_ONLY=True,
        QUART_AUTH_DURATION=int(SESSION_LIFETIME.total_seconds()),
        # Quart's own session cookie only carries the CSRF secret.
        SESSION_COOKIE_SECURE=settings.production,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
    )
    app.extensions["settings"] = settings
    ids.register(app)
    QuartSchema(
        app,
        info={"title": "Landing analytics", "version": "1.0"},
        security_schemes={
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in_": "cookie", "name": SESSION_COOKIE},
        },
        openapi_provider_class=OpenAPI,
        # Their pages load unpinned scripts from CDNs: /docs is ours (app.routes.docs).
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
    )
    auth.init_session_auth(app)
    errors.register(app)
    csrf.init_app(app, exempt_blueprints=[track.blueprint.name])
    breakdowns.register_converters(app)
    for route_group in (health, track, summary, stats, breakdowns, events, login, pages, live,
                        tokens, shares, team, platform, ingest_health, docs):
        app.register_blueprint(route_group.blueprint)

    fixed_headers = security_headers(settings.production)
    app.asgi_app = LiveFastPath(app, TrackFastPath(
        app, ReadFastPath(app, app.asgi_app, fixed_headers), fixed_headers))

    @app.after_request
    async def add_security_headers(response: Response) -> Response:
        if "X-Content-Type-Options" not in response.headers:  # one scan, not one per header
            response.headers.extend(fixed_headers)
        return response

    @app.while_serving
    async def lifespan():
        svc = await Services.start(await Clients.open(settings, web=True))
        app.extensions["analytics"] = svc
        refresher = asyncio.create_task(background(svc))
        tallier = asyncio.create_task(flush_ingest_health(svc))
        try:
            async with live.serving(app, svc):
                with long_lived():
                    yield
        finally:
            tallier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tallier
            try:  # the last second's counts
                await svc.ingest_health.flush(svc.redis)
            except Exception as error:
                log.warning("ingest health not flushed at shutdown: %s", type(error).__name__)
            # redis-py can swallow a cancellation that lands inside a pipeline (redis/redis-py
            # #2028, #2551), which left shutdown waiting on the refresher's next sleep.
            while not refresher.done():
                refresher.cancel()
                await asyncio.wait([refresher], timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await svc.ingestor.calls.close()
            log.info("track batches (events a call: calls): %s",
                     dict(sorted(svc.ingestor.calls.sizes.items())))
            await svc.close()

    return app


async def flush_ingest_health(svc: Services) -> None:
    """Adds the /track outcomes counted in process to Redis every `ingest_health_flush` s."""
    while True:
        await asyncio.sleep(svc.settings.ingest_health_flush)
        try:
            await svc.ingest_health.flush(svc.redis)
        except Exception as error:
            log.warning("ingest health not flushed: %s", type(error).__name__)


async def background(svc: Services) -> None:
    """Keeps the tenant directory and the daily salts fresh; survives outages."""
    while True:
        try:
            await svc.tenants.reload()
        except Exception as error:
            log.warning("tenant directory not refreshed: %s", type(error).__name__)
        try:
            await svc.salts.prefetch(svc.clock())
        except Exception as error:
            log.warning("daily salts not prefetched: %s", type(error).__name__)
        await asyncio.sleep(svc.settings.directory_refresh)
