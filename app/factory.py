"""The web app factory: configuration, extensions, blueprints and the clients' lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from quart import Quart, Response
from quart_auth import QuartAuth
from quart_schema import QuartSchema

from app import analytics, csrf, errors, health, live, login, pages, track
from app.accounts import SESSION_LIFETIME
from app.clients import WEB_REDIS_READ_TIMEOUT, make_pool, make_redis
from app.fastpath import TrackFastPath
from app.openapi import OpenAPI
from app.config import Settings
from app.services import Services, make_ingestor
from app.tenants import TenantDirectory
from app.throttle import LoginThrottle
from realtime.bots import warm_up
from realtime.events import MAX_BODY_BYTES
from realtime.keys import Keys
from realtime.privacy import derive_key
from realtime.scripts import Scripts

log = logging.getLogger(__name__)

BACKGROUND_INTERVAL = 60
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
}


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or Settings.from_env()
    app = Quart(__name__, template_folder="../web/templates", static_folder="../web/static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
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
    QuartSchema(
        app,
        info={"title": "Landing analytics", "version": "1.0"},
        security_schemes={
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in_": "cookie", "name": "QUART_AUTH"},
        },
        openapi_provider_class=OpenAPI,
    )
    QuartAuth(app)
    errors.register(app)
    csrf.init_app(app, exempt_blueprints=[track.blueprint.name])
    app.register_blueprint(health.blueprint)
    app.register_blueprint(track.blueprint)
    app.register_blueprint(analytics.blueprint)
    app.register_blueprint(login.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(live.blueprint)

    app.asgi_app = TrackFastPath(app, app.asgi_app, SECURITY_HEADERS)

    @app.after_request
    async def security_headers(response: Response) -> Response:
        if "X-Content-Type-Options" not in response.headers:  # one scan, not one per header
            response.headers.extend(SECURITY_HEADERS)
        return response

    @app.while_serving
    async def lifespan():
        svc = await start_services(settings)
        app.extensions["analytics"] = svc
        refresher = asyncio.create_task(background(svc))
        try:
            async with live.serving(app, svc):
                yield
        finally:
            # redis-py can swallow a cancellation that lands inside a pipeline (redis/redis-py
            # #2028, #2551), which left shutdown waiting on the refresher's next sleep.
            while not refresher.done():
                refresher.cancel()
                await asyncio.wait([refresher], timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await svc.redis.aclose()
            await svc.pool.close()

    return app


async def start_services(settings: Settings) -> Services:
    keys = Keys(settings.key_prefix)
    redis = make_redis(settings.redis_url, read_timeout=WEB_REDIS_READ_TIMEOUT)
    pool = await make_pool(settings.database_url, reset_sessions=False)
    scripts = Scripts.load(redis)
    ingestor = make_ingestor(settings, redis, keys, scripts)
    warm_up()
    login_throttle = LoginThrottle(redis, keys, derive_key(settings.secret_key, "login-throttle"))
    return Services(settings, keys, redis, pool, scripts, TenantDirectory(pool), ingestor.salts,
                    ingestor, login_throttle)


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
        await asyncio.sleep(BACKGROUND_INTERVAL)
