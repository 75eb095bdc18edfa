"""WS /api/analytics/<tenant_id>/live: a tenant's numbers, pushed to dashboards as they change.

Credentials (a bearer token, the owner's session cookie, or `?share=<token>` of a share link,
since a browser cannot give a socket headers) are checked before the handshake completes:
without valid ones the upgrade is answered with HTTP 401, for another tenant 403, for an
unknown tenant 404 and while Redis is unreachable 503, each with the usual JSON error body;
no websocket frame is ever sent.

Then the server sends JSON text frames:

- `{"type": "snapshot", "data": {...}}` once, first;
- `{"type": "update", "data": {...}}` when the numbers change: at once, then at most one per
  250 ms while events keep coming;
- with `?events=1` only, `{"type": "event", "data": {"event_type", "ts", "metadata",
  "referrer"}}` for recent accepted events: a feed for display, which under load keeps the
  newest and skips others, so count with `update`, never with these. `metadata` is what the
  landing page sent: show it as text;
- `{"type": "ping"}` after 20 s without other frames, so a client can tell a dead link
  (the server also sends protocol-level pings and drops peers that do not answer).

`data` holds absolute values (`visitors_today`, `pageviews_today`, `whatsapp_clicks`,
`call_clicks`, `currency_toggles`, `qr_scans`, `products_viewed`, `active_visitors`), so a
client that missed a frame is right again after the next. Frames from the client are ignored.

Close codes: 1001 the server is shutting down, 1012 it is restarting, 1013 live data is
unavailable (Redis was lost): reconnect after a short, growing delay. 1008 the client did not
read for `live_send_timeout` seconds. 4401 / 4403 the credentials stopped being valid / no
longer cover the tenant (checked every `live_reauth_interval` seconds): log in again.
(Both are in `app/settings.py`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import AsyncIterator
from typing import Protocol

import orjson
from quart import Blueprint, Quart, current_app, websocket

from app.clients import make_redis, warmed
from app.http.auth import authorize
from app.http.errors import APIError
from app.http.tenancy import tenant_zone
from app.services import Services, services
from realtime.broadcast import CLOSE_GOING_AWAY, Broadcaster, Closed, Subscription, Unavailable
from realtime.scripts import Scripts
from realtime.snapshots import Snapshot

log = logging.getLogger(__name__)
blueprint = Blueprint("live", __name__)

CLOSE_TOO_SLOW = 1008
CLOSE_CLIENT_LEFT = 1000  # never sent: it ends the stream of a client that has gone
CLOSE_UNAUTHORIZED = 4401  # 4403 when the credentials no longer cover the tenant
PING = orjson.dumps({"type": "ping"}).decode()


def broadcaster() -> Broadcaster:
    return current_app.extensions["live"]


@blueprint.websocket("/api/analytics/<int:tenant_id>/live")
async def live(tenant_id: int) -> None:
    """Live numbers of a tenant; see the module docstring for the messages."""
    # Sockets are served ahead of Quart (app/http/live_fastpath.py); this route serves what
    # that leaves to Quart, through the same `serve`.
    await serve(services(), broadcaster(), tenant_id, wants_feed(websocket.args.get("events")),
                _QuartSocket())


def wants_feed(events: str | None) -> bool:
    return events in ("1", "true")


class Socket(Protocol):
    """The websocket `serve` talks to: Quart's, or the ASGI connection itself."""

    async def accept(self) -> None: ...

    async def send(self, frame: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def receive(self) -> bool:
        """Waits for the client's next message; False once the client has left."""
        ...


class _QuartSocket:
    async def accept(self) -> None:
        await websocket.accept()

    async def send(self, frame: str) -> None:
        await websocket.send(frame)

    async def close(self, code: int, reason: str) -> None:
        await websocket.close(code, reason)

    async def receive(self) -> bool:
        await websocket.receive()  # Quart cancels the handler when the client leaves
        return True


async def serve(svc: Services, hub: Broadcaster, tenant_id: int, feed: bool,
                socket: Socket) -> None:
    """A live socket from its handshake to its end. Raises APIError (or UnknownTenant) before
    the handshake completes, for the caller to answer as an HTTP error; the credentials are
    whatever the context presents (app/http/auth.py)."""
    await authorize(tenant_id)
    timezone = await tenant_zone(svc, tenant_id)
    try:
        async with hub.watch(tenant_id, timezone, events=feed) as subscription:
            await socket.accept()
            await _stream(svc, tenant_id, subscription, socket)
    except Unavailable as error:  # raised by watch() only, before the handshake completes
        log.warning("live socket refused: %s", error)
        raise APIError(503, "live data is unavailable, try again shortly") from None


@functools.lru_cache(maxsize=1024)
def _frame(kind: str, state: Snapshot) -> str:
    # The same state goes to every socket of a tenant: encoded once, not once per socket.
    return orjson.dumps({"type": kind, "data": state.as_dict()}).decode()


async def _stream(svc: Services, tenant_id: int, subscription: Subscription,
                  socket: Socket) -> None:
    settings = svc.settings
    send_timeout = settings.live_send_timeout
    heartbeat = settings.live_heartbeat

    async def send(frames: list[str]) -> None:
        async with asyncio.timeout(send_timeout):
            for frame in frames:
                await socket.send(frame)

    reader = asyncio.create_task(_discard_incoming(socket, subscription))
    recheck = _Recheck(tenant_id, subscription, settings.live_reauth_interval)
    try:
        await send([_frame("snapshot", subscription.first)])
        while True:
            try:
                async with asyncio.timeout(heartbeat):
                    state, events = await subscription.get()
            except TimeoutError:
                await send([PING])
                continue
            except Closed as closed:
                async with asyncio.timeout(send_timeout):
                    await socket.close(closed.code, closed.reason)
                return
            frames = [_frame("update", state)] if state is not None else []
            frames.extend(orjson.dumps({"type": "event", "data": e}).decode() for e in events)
            await send(frames)
    except TimeoutError:
        # The peer stopped reading. Leaving releases the subscription at once; the server
        # drops the connection itself when its pings go unanswered.
        log.info("live socket dropped: client too slow")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(0.1):
                await socket.close(CLOSE_TOO_SLOW, "client too slow")
    finally:
        reader.cancel()
        recheck.stop()


async def _discard_incoming(socket: Socket, subscription: Subscription) -> None:
    # Frames from the client mean nothing here, but must be read: Quart queues them without
    # bound, uvicorn stops reading the connection (pongs and a close included) until the
    # app takes one, and the client leaving shows only here.
    while await socket.receive():
        pass
    subscription.close(CLOSE_CLIENT_LEFT, "the client left")


class _Recheck:
    """Ends the socket once its credentials stop covering the tenant (a revoked token, an
    expired session): a socket outlives any single request's check.

    Every `interval` seconds a timer starts one check in a task of its own, so an idle socket
    holds a timer rather than a sleeping task, and a slow check (Postgres away) never holds
    back the socket's updates. Timers and tasks run in the websocket's context, which the
    check reads its credentials from.
    """

    def __init__(self, tenant_id: int, subscription: Subscription, interval: float) -> None:
        self.tenant_id = tenant_id
        self.subscription = subscription
        self.interval = interval
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        self._pending: asyncio.TimerHandle | asyncio.Task = self._loop.call_later(
            interval, self._start)

    def stop(self) -> None:
        self._stopped = True
        self._pending.cancel()

    def _start(self) -> None:
        self._pending = task = asyncio.ensure_future(self._check())
        task.add_done_callback(self._again)

    def _again(self, _: asyncio.Task) -> None:
        # Also called for a check that finished just before stop(): then no timer follows.
        if not self._stopped and not self.subscription.closed:
            self._pending = self._loop.call_later(self.interval, self._start)

    async def _check(self) -> None:
        try:
            await authorize(self.tenant_id)
        except APIError as error:
            if error.status >= 500:  # Postgres away: live numbers need only Redis; try later
                log.warning("live credentials not rechecked: %s", error.message)
                return
            self.subscription.close(CLOSE_UNAUTHORIZED + error.status - 401, error.message)
        except Exception as error:
            log.warning("live credentials not rechecked: %s", type(error).__name__)


# -- lifecycle --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: Quart, svc: Services) -> AsyncIterator[Broadcaster]:
    """Runs the process' broadcaster while the app serves; closes sockets with 1001 on exit."""
    settings = svc.settings
    # Its commands are reads, so one retry is safe; it spares a 503 on the first use of a
    # pooled connection that died with a Redis restart.
    redis = await warmed(make_redis(settings.redis_url, timeout=settings.live_redis_timeout,
                                    retries=1), settings.live_redis_timeout)
    # The lambda reads svc.clock at each call, so tests that pin the clock pin this too.
    hub = Broadcaster(
        redis, Scripts.load(redis).live_snapshot, svc.keys, clock=lambda: svc.clock(),
        tick=settings.live_tick, burst=settings.live_burst, refresh=settings.live_refresh,
        max_events=settings.live_max_events, ping_interval=settings.live_ping_interval,
        ping_timeout=settings.live_ping_timeout,
        reconnect_delays=settings.live_reconnect_delays,
    )
    await hub.start()
    await hub.wait_connected(timeout=1.0)  # serve anyway: the listener keeps trying
    app.extensions["live"] = hub
    restore = _close_sockets_on_signals(hub, settings.live_shutdown_grace)
    try:
        yield hub
    finally:
        restore()
        await hub.stop(CLOSE_GOING_AWAY, "server shutting down")
        await redis.aclose()


def _close_sockets_on_signals(hub: Broadcaster, grace: float):
    """Says 1001 to every socket when the server is told to stop, then lets it stop.

    ASGI servers close open websockets themselves on SIGTERM (uvicorn with 1012) before the
    lifespan ends, so the broadcaster would be too late; this runs first and hands the signal
    on to the server's handler once the sockets are closed or `grace` has passed. It only
    chains a Python-level handler a server installed; elsewhere (tests) it does nothing.
    """
    loop = asyncio.get_running_loop()
    installed: dict[int, object] = {}

    async def close_then(previous, signum, frame) -> None:
        hub.drain(CLOSE_GOING_AWAY, "server shutting down")
        deadline = loop.time() + grace
        while hub.watchers() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        previous(signum, frame)

    def handler_for(previous):
        def handle(signum, frame) -> None:
            loop.call_soon_threadsafe(
                lambda: asyncio.ensure_future(close_then(previous, signum, frame)))
        return handle

    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            if callable(previous) and previous is not signal.default_int_handler:
                signal.signal(signum, handler_for(previous))
                installed[signum] = previous

    def restore() -> None:
        with contextlib.suppress(ValueError):
            for signum, previous in installed.items():
                signal.signal(signum, previous)

    return restore
