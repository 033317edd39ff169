"""Telegram's send limits as sliding windows, and per-chat ordering.

The arithmetic is pure (`SlidingWindow.next_allowed`); `RateLimiter.acquire` queues the sender
and one dispatcher grants queued senders at the earliest instant every window (global, per chat,
per group) and any 429 pause allow, waking only at those instants or when a send completes (an
earlier version let each waiter poll: with hundreds of chats queued the event loop spent itself
on wake-ups, and late completions cost ~4 % of the budget). Limits hold "in any window": never
more than N sends in any interval of the window's length.

A send is counted from the moment it starts until it completes, and then at its completion
time: Telegram sees a request somewhere in between, so spacing starts from completions keeps the
limit at the server however late the client's event loop puts a request on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Clock = Callable[[], float]
"""Monotonic seconds."""

OWN_IN_FLIGHT_RECHECK = 0.002
"""A waiter whose own chat has a send in flight is looked at again after this long."""


class SlidingWindow:
    """At most `limit` events in any interval of `period` seconds.

    `stamps` are completed events (at their completion time, in order); `in_flight` events have
    started and count as happening now.
    """

    __slots__ = ("in_flight", "limit", "period", "stamps")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.stamps: deque[float] = deque()
        self.in_flight = 0

    def next_allowed(self, now: float, in_flight: bool = True) -> float:
        """The earliest instant ≥ now at which one more event fits; infinity when only the
        completion of an in-flight event can make room (`in_flight=False`: ignore those)."""
        stamps = self.stamps
        while stamps and stamps[0] <= now - self.period:
            stamps.popleft()
        excess = len(stamps) + (self.in_flight if in_flight else 0) - self.limit
        if excess < 0:
            return now
        if excess < len(stamps):
            return stamps[excess] + self.period
        return math.inf

    def record(self, at: float) -> None:
        """Count one completed event at `at`."""
        if self.stamps and at < self.stamps[-1]:
            at = self.stamps[-1]
        self.stamps.append(at)

    def idle(self, now: float) -> bool:
        """True when no event in the window constrains the future."""
        return not self.in_flight and (not self.stamps or self.stamps[-1] <= now - self.period)


@dataclass(frozen=True)
class Limits:
    """Messages per second per bot and per chat, per minute per group; 0 means unlimited."""

    global_per_second: float = 30
    per_chat_per_second: float = 1
    per_group_per_minute: float = 20
    margin: float = 0.001
    """Seconds added to each window. Stamps are taken at completion, after Telegram saw the
    request, so the limit holds without one; this only absorbs timer rounding."""


def _window(rate: float, period: float, margin: float) -> SlidingWindow | None:
    if rate <= 0:
        return None
    if rate >= 1:
        return SlidingWindow(int(rate), period + margin)
    # Fractional rates (0.5/s) become one message per 1/rate seconds.
    return SlidingWindow(1, period / rate + margin)


class RateLimiter:
    """Global, per-chat and per-group windows plus the pause a 429 imposes on every send."""

    def __init__(self, limits: Limits, clock: Clock = time.monotonic, exposure: int = 0) -> None:
        self.limits = limits
        self._exposure = exposure
        """At most this many exposed grants at once (0: no bound); see `acquire(expose=True)`."""
        self._exposed = 0
        self._clock = clock
        self._global = _window(limits.global_per_second, 1.0, limits.margin)
        self._chats: dict[int, SlidingWindow] = {}
        self._groups: dict[int, SlidingWindow] = {}
        self._paused_until = 0.0
        self._acquired = 0
        self.waited_seconds = 0.0
        self._waiters: list[tuple[float, int, int, asyncio.Future[None], bool]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None

    def pause(self, seconds: float) -> None:
        """Telegram said 429 with retry_after: no request to any chat before it elapses."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def next_allowed(self, chat_id: int, now: float) -> float:
        """The earliest instant a message to `chat_id` may be sent (pure arithmetic)."""
        at = max(now, self._paused_until)
        if self._global is not None:
            at = max(at, self._global.next_allowed(now))
        chat = self._chats.get(chat_id)
        if chat is not None:
            at = max(at, chat.next_allowed(now))
        if chat_id < 0:
            group = self._groups.get(chat_id)
            if group is not None:
                at = max(at, group.next_allowed(now))
        return at

    def _windows(self, chat_id: int) -> list[SlidingWindow]:
        windows = [] if self._global is None else [self._global]
        chat = self._own(self._chats, chat_id, self.limits.per_chat_per_second, 1.0)
        if chat is not None:
            windows.append(chat)
        if chat_id < 0:
            group = self._own(self._groups, chat_id, self.limits.per_group_per_minute, 60.0)
            if group is not None:
                windows.append(group)
        return windows

    def _own(
        self, windows: dict[int, SlidingWindow], chat_id: int, rate: float, period: float
    ) -> SlidingWindow | None:
        """The chat's own window among `windows`, made on first need; None when `rate` is 0
        (unlimited)."""
        window = windows.get(chat_id)
        if window is None:
            window = _window(rate, period, self.limits.margin)
            if window is not None:
                windows[chat_id] = window
        return window

    def start(self, chat_id: int) -> None:
        """Count a send to `chat_id` as in flight in every window it belongs to."""
        for window in self._windows(chat_id):
            window.in_flight += 1

    def finish(self, chat_id: int, at: float) -> None:
        """The send started with `start` completed at `at`."""
        for window in self._windows(chat_id):
            window.in_flight -= 1
            window.record(at)
        self._acquired += 1
        if self._acquired % 4096 == 0:
            self._forget_idle(at)

    def record(self, chat_id: int, at: float) -> None:
        """Count a message sent to `chat_id` that started and completed at `at`."""
        self.start(chat_id)
        self.finish(chat_id, at)

    async def acquire(self, chat_id: int, expose: bool = False) -> float:
        """Wait until a message to `chat_id` is allowed and mark it in flight.

        Returns the seconds waited; the caller must call `release` when the send completes.
        `expose=True` also takes one of the `exposure` slots (requests written to Telegram whose
        hand-over mark is not yet committed), given back with `unexpose`: waiting for one
        happens here, before the send is counted in any window, so it costs no budget.
        Waiters are granted in order of the instant their own chat allows them (then arrival),
        by one dispatcher that sleeps until the next instant anything can go or a send
        completes: no waiter polls, however many chats are queued.
        """
        started = self._clock()
        expose = expose and self._exposure > 0
        if (
            not self._waiters
            and self.next_allowed(chat_id, started) <= started
            and not (expose and self._exposed >= self._exposure)
        ):
            self.start(chat_id)
            self._exposed += expose
            return 0.0
        grant: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._waiters,
            (self._own_next(chat_id, started), next(self._order), chat_id, grant, expose),
        )
        self._poke()
        try:
            await grant
        except asyncio.CancelledError:
            if grant.done() and not grant.cancelled():  # granted, but the sender went away
                self._unstart(chat_id)
                if expose:
                    self.unexpose()
            self._poke()  # so the dispatcher drops it (and ends when nobody waits)
            raise
        waited = self._clock() - started
        self.waited_seconds += waited
        return waited

    def unexpose(self) -> None:
        """An exposed request's hand-over mark is committed (or it was never written)."""
        if not self._exposure:
            return
        self._exposed -= 1
        if self._waiters:
            self._poke()

    def release(self, chat_id: int) -> None:
        """The send acquired for `chat_id` has completed (successfully or not)."""
        self.finish(chat_id, self._clock())
        if self._waiters:
            self._poke()

    def _own_next(self, chat_id: int, now: float) -> float:
        """When the chat's own windows and any pause allow it (sends in flight aside)."""
        at = max(now, self._paused_until)
        for table in (self._chats, self._groups):
            window = table.get(chat_id)
            if window is not None and window.stamps:
                at = max(at, window.next_allowed(now, in_flight=False))
        return at

    def _unstart(self, chat_id: int) -> None:
        for window in self._windows(chat_id):
            window.in_flight -= 1

    def _poke(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())
        else:
            self._wake.set()

    async def _dispatch(self) -> None:
        """Grant waiters, earliest-allowed first, sleeping only until something can change."""
        waiters = self._waiters
        while waiters:
            self._wake.clear()
            now = self._clock()
            ready_at, order, chat_id, grant, expose = waiters[0]
            if grant.done():  # its sender was cancelled while waiting
                heapq.heappop(waiters)
                continue
            if ready_at > now:
                await self._sleep(ready_at - now)
                continue
            held = self._global.next_allowed(now) if self._global is not None else now
            if held > now:  # the global window holds everyone: until a stamp expires or a send
                await self._sleep(held - now)  # completes (infinity: only a completion helps)
                continue
            if expose and self._exposed >= self._exposure:  # until a mark is committed
                await self._sleep(math.inf)
                continue
            if self.next_allowed(chat_id, now) <= now:
                heapq.heappop(waiters)
                self.start(chat_id)
                self._exposed += expose
                grant.set_result(None)
                continue
            # Its chat says later (or has a send of its own in flight, which the sequencer makes
            # rare): look at the others meanwhile.
            later = max(self._own_next(chat_id, now), now + OWN_IN_FLIGHT_RECHECK)
            heapq.heapreplace(waiters, (later, order, chat_id, grant, expose))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(None if math.isinf(seconds) else seconds):
                await self._wake.wait()

    def _forget_idle(self, now: float) -> None:
        for table in (self._chats, self._groups):
            for key in [k for k, w in table.items() if w.idle(now)]:
                del table[key]


class ChatSequencer:
    """Keeps sends to one chat in arrival order: a ticket is taken synchronously on arrival,
    and each send waits until every earlier ticket of its chat has finished. Each place in a
    line may carry an entry (what waits there), so the one whose turn it is can see who waits
    behind it."""

    def __init__(self) -> None:
        self._queues: dict[int, deque[tuple[asyncio.Future[None], Any]]] = {}

    def enter(self, chat_id: int, entry: Any = None) -> asyncio.Future[None]:
        """Take the next place in `chat_id`'s line; await the returned future for one's turn."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self._queues.setdefault(chat_id, deque())
        line.append((future, entry))
        if len(line) == 1:
            future.set_result(None)
        return future

    def leave(self, chat_id: int, ticket: asyncio.Future[None]) -> None:
        """Give up the turn (after sending, or on failure); wakes the next in line."""
        line = self._queues.get(chat_id)
        if not line:
            return
        place = next((i for i, (future, _) in enumerate(line) if future is ticket), None)
        if place is None:
            return
        del line[place]
        if not line:
            del self._queues[chat_id]
        elif place == 0 and not line[0][0].done():
            line[0][0].set_result(None)

    def behind(self, chat_id: int, ticket: asyncio.Future[None]) -> list[Any]:
        """The entries queued after `ticket` in `chat_id`'s line, in order."""
        line = self._queues.get(chat_id, ())
        for place, (future, _) in enumerate(line):
            if future is ticket:
                return [entry for _, entry in list(line)[place + 1 :]]
        return []

    def waiting(self, chat_id: int) -> int:
        """How many sends are queued for `chat_id` (including the one sending)."""
        return len(self._queues.get(chat_id, ()))


class DeliveryOrder:
    """Restores the broker's delivery order, which per-message handler tasks may swap.

    RabbitMQ numbers deliveries on a channel 1, 2, 3, ...; a handler waits its turn before
    queueing its event and calls `done` right after. A gap that does not fill within
    `max_wait` seconds (a reconnect renumbers from 1) is skipped, never waited on forever.
    """

    def __init__(self, max_wait: float = 0.5) -> None:
        self._next = 1
        self._max_wait = max_wait
        self._waiters: dict[int, asyncio.Future[None]] = {}

    async def wait_turn(self, tag: int) -> None:
        """Return when every delivery before `tag` has been queued (or given up on)."""
        if tag <= self._next:  # our turn, or the channel was reopened and numbering restarted
            self._next = tag
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[tag] = future
        try:
            async with asyncio.timeout(self._max_wait):
                await future
        except TimeoutError:
            self._next = tag
        finally:
            self._waiters.pop(tag, None)

    def done(self, tag: int) -> None:
        """Delivery `tag` is queued: let the next one go."""
        self._next = max(self._next, tag + 1)
        waiter = self._waiters.get(self._next)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
