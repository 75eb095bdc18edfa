"""Micro-batching of the /track script calls of one process.

The events a worker accepts in the same moment go to Redis together: one `track.lua` call
over the batch (per hash slot group on a cluster), each caller still awaiting its own
reply. An event that finds no batch on its way starts one at once (a lone event waits for
nothing): the batch takes what waits when its task first runs, so the events the worker
parsed in the same turn of the event loop (several connections' requests that came in one
poll) leave with it rather than a round trip behind it; while `max_in_flight` batches are
on their way, new events gather for the next one, which leaves when one of them is back,
or when it reaches `max_size`. What a batch costs in
redis-py (pool checkout, packing, a round trip) and in Redis (one script call) is paid
once for all its events.

Each call has a deadline (by default `timeout` after it was made): past it, its caller gets
TimeoutError whether the call still waited for its batch (it is then left out of it) or
its batch was on its way (it may then still be recorded, as with any write whose reply is
late). One timer a group keeps the deadlines, not one a call.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from redis.commands.core import AsyncScript


@dataclass(slots=True)
class _Call:
    keys: Sequence[str]
    args: Sequence[str | int]
    reply: asyncio.Future
    deadline: float  # on the loop's clock


@dataclass
class _Group:
    waiting: list[_Call] = field(default_factory=list)
    in_flight: int = 0
    starting: int = 0  # of those in flight, batches whose task has not taken its calls yet
    scheduled: bool = False
    # Every call not known to be answered, oldest (earliest deadline) first.
    unanswered: deque[_Call] = field(default_factory=deque)
    watchdog: asyncio.TimerHandle | None = None


class Batcher:
    """Coalesces calls of one script whose first argument (`shared`) is the same for all;
    each call gives its own keys and arguments and gets its own reply.

    Calls in one group (`group`) may share a script call: on a cluster a group is a hash
    slot, on a single Redis everything may be one group.
    """

    def __init__(self, script: AsyncScript, shared: str, *, timeout: float,
                 max_size: int = 64, max_in_flight: int = 1) -> None:
        self.script = script
        self.shared = shared
        self.timeout = timeout
        self.max_size = max_size
        self.max_in_flight = max_in_flight
        self.groups: dict[Hashable, _Group] = {}
        self.sizes: Counter[int] = Counter()  # batch size -> how many batches left
        self._tasks: set[asyncio.Task] = set()

    async def call(self, group: Hashable, keys: Sequence[str], args: Sequence[str | int],
                   deadline: float | None = None):
        """The script's reply for these keys and arguments; TimeoutError past `deadline`
        (on the loop's clock; `timeout` from now if None)."""
        loop = asyncio.get_running_loop()
        state = self.groups.get(group)
        if state is None:
            state = self.groups[group] = _Group()
        if deadline is None:
            deadline = loop.time() + self.timeout
        call = _Call(keys, args, loop.create_future(), deadline)
        state.waiting.append(call)
        state.unanswered.append(call)
        if state.watchdog is None:
            state.watchdog = loop.call_at(deadline, self._expire, state)
        if state.in_flight < self.max_in_flight and (
                not state.in_flight or self._untaken(state) >= self.max_size):
            # Nothing on its way (the Redis connection is idle: waiting for company would
            # only add latency), or a full batch that no starting one will take.
            self._send(state)
        elif not state.scheduled:
            state.scheduled = True
            loop.call_soon(self._ready, state)
        return await call.reply

    def _expire(self, state: _Group) -> None:
        """Fails the calls whose deadline passed; sets the timer for the next one."""
        loop = asyncio.get_running_loop()
        now, unanswered = loop.time(), state.unanswered
        while unanswered and (unanswered[0].reply.done() or unanswered[0].deadline <= now):
            call = unanswered.popleft()
            if not call.reply.done():
                call.reply.set_exception(TimeoutError())
        state.watchdog = (loop.call_at(unanswered[0].deadline, self._expire, state)
                          if unanswered else None)

    def _ready(self, state: _Group) -> None:
        state.scheduled = False
        self._send_while_room(state)

    def _untaken(self, state: _Group) -> int:
        """Waiting calls that no starting batch will take."""
        return len(state.waiting) - state.starting * self.max_size

    def _send_while_room(self, state: _Group) -> None:
        """Sends what waits, in batches, while fewer than `max_in_flight` are on their way."""
        while self._untaken(state) > 0 and state.in_flight < self.max_in_flight:
            self._send(state)

    def _send(self, state: _Group) -> None:
        state.in_flight += 1
        state.starting += 1
        task = asyncio.get_running_loop().create_task(self._run(state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, state: _Group) -> None:
        # The calls are taken now, a loop turn after the send: those made meanwhile join.
        state.starting -= 1
        batch, state.waiting = state.waiting[:self.max_size], state.waiting[self.max_size:]
        batch = [call for call in batch if not call.reply.done()]  # its caller gave up
        try:
            if not batch:
                return
            self.sizes[len(batch)] += 1
            keys: list[str] = []
            args: list[str | int] = [self.shared]
            for call in batch:
                keys.extend(call.keys)
                args.extend(call.args)
            replies = await self.script(keys=keys, args=args)
        except Exception as error:
            for call in batch:
                if not call.reply.done():
                    call.reply.set_exception(error)
        except BaseException:  # cancelled: the process is stopping
            for call in batch:
                call.reply.cancel()
            raise
        else:
            for call, reply in zip(batch, replies, strict=True):
                if not call.reply.done():
                    call.reply.set_result(reply)
        finally:
            state.in_flight -= 1
            if not state.scheduled:
                self._send_while_room(state)

    async def close(self) -> None:
        """Waits for the batches on their way (a process stopping answers its callers)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for state in self.groups.values():
            if state.watchdog is not None:
                state.watchdog.cancel()
                state.watchdog = None
