"""Fan-out of live numbers to this process' sockets over one Redis pub/sub connection per
Redis node.

After encode/broadcaster: a listener reads the pub/sub connection and only marks the
tenant dirty (and keeps its last few events); a publisher task computes ONE snapshot per dirty
tenant and offers it to each of the tenant's local subscriptions. A token bucket per tenant
(`burst` snapshots at once, refilled at one per `tick`) paces them: a lone event, or a few close
together, show in milliseconds, and a sustained burst becomes 1/`tick` updates a second. A
subscription is a mailbox holding the newest state and a bounded list of events, so a socket
costs the same memory whether its client reads fast, slowly or never, and no socket ever waits
for another.
Every `refresh` seconds all watched tenants are recomputed, so `active_visitors` falls when
visitors leave even if no event arrives.

A tenant's channel is a shard channel (SSUBSCRIBE; track.lua SPUBLISHes) in its keys' hash
slot, subscribed while at least one local subscription watches it. On a single Redis that is
one connection; on a Redis Cluster, redis-py's cluster pub/sub opens one per node holding a
watched tenant's slot, and a message travels only within that node's shard instead of to
every node as a classic PUBLISH does. One reader runs per connection; when any of them finds
its connection dead (a PING unanswered), every subscription is closed with CLOSE_TRY_AGAIN
(clients reconnect later) and the listener reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from realtime import stream
from realtime.keys import Keys
from realtime.snapshots import Snapshot, snapshot, snapshots

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013

REDIS_ERRORS = (RedisError, OSError, TimeoutError)
STOP_TIMEOUT = 3.0  # seconds stop() waits for its tasks; a test app's shutdown allows 6


class Unavailable(RuntimeError):
    """Live data cannot be served now: Redis does not answer."""


class Closed(Exception):
    """The broadcaster ended this subscription; `code` is a websocket close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class Subscription:
    """One socket's mailbox: the newest state not yet taken, and the last few events."""

    def __init__(self, tenant_id: int, max_events: int) -> None:
        self.tenant_id = tenant_id
        self.first: Snapshot | None = None  # what the socket sends as its snapshot
        self._state: Snapshot | None = None
        self._last: Snapshot | None = None
        # Computations are numbered as they start: an older one finishing late is ignored,
        # so the numbers a socket sees never step back to a state it has left.
        self._seq = -1
        # Only sockets that asked for the feed hold a deque; none holds an asyncio.Event:
        # idle sockets are many, and each of these is most of a kilobyte.
        self._events: deque[dict] | None = deque(maxlen=max_events) if max_events else None
        self._waiter: asyncio.Future | None = None
        self._closed: Closed | None = None

    @property
    def backlog(self) -> int:
        """Items waiting to be taken; bounded by 1 + max_events."""
        return (self._state is not None) + len(self._events or ())

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def start(self, state: Snapshot, seq: int) -> None:
        """Sets the first snapshot, which the consumer sends itself, unless a newer is pending."""
        self.first = state
        if seq > self._seq:
            self._seq = seq
            self._last = state
            self._state = None

    def offer(self, state: Snapshot, seq: int) -> None:
        if self._closed or seq <= self._seq:
            return
        self._seq = seq
        if state == self._last:
            return
        # Replaces whatever the consumer has not taken yet: values are absolute.
        self._last = self._state = state
        self._wake()

    def offer_events(self, events: list[dict]) -> None:
        if events and self._events is not None and not self._closed:
            self._events.extend(events)
            self._wake()

    def close(self, code: int, reason: str) -> None:
        if self._closed is None:
            self._closed = Closed(code, reason)
            self._state = None
            if self._events is not None:
                self._events.clear()
            self._wake()

    async def get(self) -> tuple[Snapshot | None, list[dict]]:
        """Waits for news: the newest state (or None) and the events since the last call.

        Raises Closed once the broadcaster ended the subscription.
        """
        while True:
            if self._closed is not None:
                raise self._closed
            if self._state is not None or self._events:
                state, self._state = self._state, None
                events = list(self._events or ())
                if self._events is not None:
                    self._events.clear()
                return state, events
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


@dataclass
class _Topic:
    timezone: ZoneInfo
    channel: bytes
    subscriptions: set[Subscription] = field(default_factory=set)
    events: deque[dict] = field(default_factory=deque)
    # A token bucket of snapshots: `burst` at once, then one per `tick` (loop time).
    _tokens: float = 0.0
    _counted_at: float = float("-inf")

    def tokens(self, now: float, tick: float, burst: int) -> float:
        return min(burst, self._tokens + (now - self._counted_at) / tick)

    def ready_at(self, now: float, tick: float, burst: int) -> float:
        """When the tenant may have its next snapshot."""
        return now + max(0.0, 1 - self.tokens(now, tick, burst)) * tick

    def take(self, now: float, tick: float, burst: int) -> None:
        self._tokens = self.tokens(now, tick, burst) - 1
        self._counted_at = now


class Broadcaster:
    """Per-process live fan-out; `start()` it once, `stop()` it on shutdown."""

    def __init__(self, redis: Redis | RedisCluster, script: AsyncScript, keys: Keys,
                 clock: Callable[[], float], *, tick: float = 0.25, burst: int = 4,
                 refresh: float = 10.0, max_events: int = 10, ping_interval: float = 5.0,
                 ping_timeout: float = 3.0,
                 reconnect_delays: tuple[float, float] = (0.25, 5.0)) -> None:
        self.redis = redis
        self.script = script  # live_snapshot.lua, registered on `redis`
        self.keys = keys
        self.clock = clock
        self.tick = tick
        self.burst = burst
        self.refresh = refresh
        self.max_events = max_events
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.reconnect_delays = reconnect_delays
        self._topics: dict[int, _Topic] = {}
        self._by_channel: dict[bytes, int] = {}
        self._dirty: set[int] = set()
        self._wake = asyncio.Event()  # set when a tenant becomes dirty
        self._pubsub: PubSub | None = None
        self._subscribed: set[bytes] = set()
        self._lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._links_changed = asyncio.Event()  # set when a connection may have been added
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._seq = itertools.count()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        for work in (self._listen(), self._ticker()):
            self._spawn(work)

    async def stop(self, code: int = CLOSE_GOING_AWAY,
                   reason: str = "server shutting down") -> None:
        self.drain(code, reason)
        # Cancelled again until done: redis-py can swallow a cancellation that lands inside
        # a command (redis/redis-py #2028), and the loops would then go on until the next one.
        tasks = list(self._tasks)
        deadline = asyncio.get_running_loop().time() + STOP_TIMEOUT
        while any(not task.done() for task in tasks):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("live tasks did not stop within %s s", STOP_TIMEOUT)
                break
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.1)
        await self._drop_connection()

    def drain(self, code: int, reason: str) -> None:
        """Closes every subscription and refuses new ones: the process is going away."""
        self._stopping = True
        self.close_all(code, reason)

    def close_all(self, code: int, reason: str) -> None:
        for topic in self._topics.values():
            for subscription in topic.subscriptions:
                subscription.close(code, reason)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        return self.connected

    def watchers(self, tenant_id: int | None = None) -> int:
        """Local subscriptions of one tenant, or of all."""
        if tenant_id is not None:
            topic = self._topics.get(tenant_id)
            return len(topic.subscriptions) if topic else 0
        return sum(len(topic.subscriptions) for topic in self._topics.values())

    def subscriptions(self, tenant_id: int) -> list[Subscription]:
        topic = self._topics.get(tenant_id)
        return list(topic.subscriptions) if topic else []

    @property
    def connections(self) -> int:
        """Pub/sub connections open now: one per cluster node holding a watched channel."""
        return len(self._links())

    @property
    def channels(self) -> set[bytes]:
        """Channels the pub/sub connection is subscribed to now."""
        return set(self._subscribed)

    # -- what sockets call --------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def watch(self, tenant_id: int, timezone: ZoneInfo,
                    events: bool = False) -> AsyncIterator[Subscription]:
        """A subscription to the tenant's live numbers (and with `events`, the event feed)
        for as long as the block runs.

        Its `first` snapshot is read after SUBSCRIBE, so no event falls between the two.
        Raises Unavailable when Redis does not answer.
        """
        if self._stopping or not self.connected:
            raise Unavailable("live updates are not connected to Redis")
        subscription = Subscription(tenant_id, self.max_events if events else 0)
        topic = self._topics.get(tenant_id)
        if topic is None:
            channel = self.keys.channel(tenant_id).encode()
            topic = self._topics[tenant_id] = _Topic(timezone, channel)
            self._by_channel[channel] = tenant_id
        topic.subscriptions.add(subscription)
        try:
            try:
                await self._sync()
                seq = next(self._seq)
                first = await snapshot(self.redis, self.script, self.keys, tenant_id, timezone,
                                       self.clock())
            except REDIS_ERRORS as error:
                raise Unavailable(str(error)) from None
            subscription.start(first, seq)
            yield subscription
        finally:
            topic.subscriptions.discard(subscription)
            if not topic.subscriptions and self._topics.get(tenant_id) is topic:
                del self._topics[tenant_id]
                self._by_channel.pop(topic.channel, None)
                self._dirty.discard(tenant_id)
                # In a task: this block may be unwinding from a cancellation.
                self._spawn(self._sync_quietly())

    # -- the pub/sub connections -------------------------------------------------------

    async def _sync(self) -> None:
        """Makes the shard-channel subscriptions match the watched tenants."""
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the listener subscribes to every watched tenant when it connects
            wanted = {topic.channel for topic in self._topics.values()}
            drop = self._subscribed - wanted
            add = wanted - self._subscribed
            if drop:
                await pubsub.sunsubscribe(*drop)
                self._subscribed -= drop
            if add:
                await pubsub.ssubscribe(*add)
                self._subscribed |= add
        self._links_changed.set()  # a cluster may have opened a connection to another node

    async def _sync_quietly(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self._sync()  # a failure here is an outage the listener handles

    async def _listen(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self._connect()
                failures = 0
                await self._supervise()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                was_connected = self.connected
                self._connected.clear()
                await self._drop_connection()
                if was_connected:
                    log.warning("live pub/sub lost (%s); closing live sockets",
                                type(error).__name__)
                    self.close_all(CLOSE_TRY_AGAIN, "live data unavailable, reconnect later")
                low, high = self.reconnect_delays
                await asyncio.sleep(min(high, low * 2 ** min(failures, 8)))
                failures += 1

    async def _connect(self) -> None:
        pubsub = self.redis.pubsub()
        async with self._lock:
            self._pubsub = pubsub  # set first, so that a failure below closes it
            self._subscribed = set()
            async with asyncio.timeout(self.ping_timeout):
                if isinstance(pubsub, ClusterPubSub):
                    # The cluster pub/sub opens one connection per node as channels on that
                    # node are subscribed; a PING of every primary says the cluster answers now.
                    await self.redis.initialize()
                    await self.redis.ping(target_nodes=RedisCluster.PRIMARIES)
                else:
                    # PING first: it opens the connection even while no tenant is watched.
                    await pubsub.ping()
                    reply = await pubsub.get_message(timeout=self.ping_timeout)
                    if reply is None or reply.get("type") != "pong":
                        raise ConnectionError("no answer to PING on the pub/sub connection")
        await self._sync()
        # Whatever happened while disconnected, every watched tenant is stale.
        self._dirty.update(self._topics)
        self._wake.set()
        self._connected.set()
        log.info("live pub/sub connected")

    def _links(self) -> dict[str, PubSub]:
        """The connections subscriptions live on: one per cluster node that holds a watched
        tenant's shard channel, or the single one."""
        pubsub = self._pubsub
        if pubsub is None:
            return {}
        if isinstance(pubsub, ClusterPubSub):
            return dict(pubsub.node_pubsub_mapping)
        return {"": pubsub}

    async def _supervise(self) -> None:
        """Keeps one reader per connection and fails as soon as any reader does."""
        readers: dict[str, tuple[PubSub, asyncio.Task]] = {}
        try:
            while not self._stopping:
                self._links_changed.clear()
                for name, link in self._links().items():
                    known = readers.get(name)
                    if known is None or known[0] is not link:
                        if known is not None:
                            known[1].cancel()
                        readers[name] = (link, asyncio.create_task(self._read(name, link)))
                changed = asyncio.create_task(self._links_changed.wait())
                try:
                    done, _ = await asyncio.wait([changed, *(t for _, t in readers.values())],
                                                 timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                for name, (_, task) in list(readers.items()):
                    if task in done:
                        del readers[name]
                        if not task.cancelled() and task.exception() is not None:
                            raise task.exception()
        finally:
            for _, task in readers.values():
                task.cancel()
            for _, task in readers.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _read(self, name: str, link: PubSub) -> None:
        """Reads one connection until it is no longer used (a cluster node whose channels
        were all unsubscribed); raises when the connection is dead."""
        pubsub = self._pubsub
        receive = link.get_message
        if isinstance(pubsub, ClusterPubSub):
            node = self.redis.get_node(node_name=name)
            if node is None:
                raise ConnectionError(f"cluster node {name} is gone")

            # Through the cluster pub/sub, which keeps its own books on unsubscriptions.
            async def receive(timeout: float):
                return await pubsub.get_sharded_message(timeout=timeout, target_node=node)

        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        ping_sent: float | None = None
        while not self._stopping and self._links().get(name) is link:
            message = await receive(timeout=min(1.0, self.ping_interval))
            now = loop.time()
            if message is not None:
                last_heard = now
                ping_sent = None
                if message["type"] == "smessage":
                    self._on_message(message["channel"], message["data"])
                continue
            # Silence can be an idle tenant or a dead link: a PING tells them apart.
            if ping_sent is None and now - last_heard >= self.ping_interval:
                await link.ping()
                ping_sent = now
            elif ping_sent is not None and now - ping_sent >= self.ping_timeout:
                raise ConnectionError("no answer to PING on the pub/sub connection")

    def _on_message(self, channel: bytes, data: bytes) -> None:
        tenant_id = self._by_channel.get(channel)
        topic = self._topics.get(tenant_id) if tenant_id is not None else None
        if topic is None:
            return  # an UNSUBSCRIBE still in flight
        self._dirty.add(tenant_id)
        self._wake.set()
        try:
            event = stream.feed_item(stream.decode(data))
        except ValueError:
            return
        topic.events.append(event)
        while len(topic.events) > self.max_events:
            topic.events.popleft()

    async def _drop_connection(self) -> None:
        async with self._lock:
            pubsub, self._pubsub = self._pubsub, None
            self._subscribed = set()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    # -- the ticker ---------------------------------------------------------------------

    async def _ticker(self) -> None:
        """Publishes dirty tenants: at once while the tenant has snapshots left in its bucket
        (`burst` of them, so a lone event, or a few close together, show in milliseconds), else
        as soon as the bucket refills (a sustained burst becomes one update per `tick`)."""
        loop = asyncio.get_running_loop()
        refreshed = loop.time()
        while not self._stopping:
            now = loop.time()
            if now - refreshed >= self.refresh:
                refreshed = now
                self._dirty.update(self._topics)
            self._dirty.intersection_update(self._topics)
            ready = {t: self._topics[t].ready_at(now, self.tick, self.burst) for t in self._dirty}
            due = [t for t, at in ready.items() if at <= now]
            if due:
                try:
                    await self.publish(due)
                except asyncio.CancelledError:
                    raise
                except REDIS_ERRORS as error:
                    log.warning("live snapshot failed: %s", type(error).__name__)
                except Exception:
                    log.exception("live ticker")
                continue
            deadline = min([refreshed + self.refresh, *ready.values()])
            # No await since `due` was computed, so no message can slip between it and this.
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - now)):
                    await self._wake.wait()

    async def publish(self, tenants: list[int]) -> None:
        """Computes one snapshot per tenant and offers it to the tenant's subscriptions."""
        loop = asyncio.get_running_loop()
        self._dirty.difference_update(tenants)
        for tenant_id in tenants:
            topic = self._topics[tenant_id]
            # Taken before the round trip: a failing Redis is retried at most once a tick.
            topic.take(loop.time(), self.tick, self.burst)
            if topic.events:
                events = list(topic.events)
                topic.events.clear()
                for subscription in topic.subscriptions:
                    subscription.offer_events(events)
        zones = [(t, self._topics[t].timezone) for t in tenants]
        seq = next(self._seq)
        try:
            states = await snapshots(self.redis, self.script, self.keys, zones, self.clock())
        except BaseException:
            self._dirty.update(tenants)
            raise
        for tenant_id, state in zip(tenants, states, strict=True):
            topic = self._topics.get(tenant_id)
            if topic is not None:
                for subscription in topic.subscriptions:
                    subscription.offer(state, seq)

    # -- helpers ------------------------------------------------------------------------

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
