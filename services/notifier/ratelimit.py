"""Telegram's send limits as sliding windows (per-chat ordering is `ordering.py`).

The arithmetic is pure (`SlidingWindow.next_allowed`); `RateLimiter.acquire` queues the sender
and one dispatcher grants queued senders at the earliest instant every window (global, per chat,
per group) and any 429 pause allow, waking only at those instants or when a send completes (an
earlier version let each waiter poll: with hundreds of chats queued the event loop spent itself
on wake-ups, and late completions cost ~4 % of the budget). Limits hold "in any window": never
more than N sends in any interval of the window's length.

Telegram counts a send when it arrives: one one-way delay after it is written, for every send
alike, so the spacing it sees is the spacing of the grants give or take the spread of that delay.
A send is therefore counted when it is granted, and when its answer took longer than the
shortest recent round trip, moved by the difference: the margin each send needs, learned from
the spread of the answers (`pacing.RoundTrips`). Counting it in flight until its answer and then at
the answer (`count_at="completion"`, the behaviour before) cost a round trip per window: 8 % of
the budget at 80 ms.

A 429 pauses only the chat it answered (`too_many`); 429s on several chats lower the global rate,
which climbs back while sending goes well (`pacing.Aimd`). Edits to groups have their own budget
per group, lowered by their own 429s.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from services.notifier.pacing import Aimd, RoundTrips, SlidingWindow, make_window, set_rate

__all__ = ["Limits", "RateLimiter", "SlidingWindow"]

Clock = Callable[[], float]
"""Monotonic seconds."""

OWN_IN_FLIGHT_RECHECK = 0.002
"""A waiter whose own chat has a send in flight is looked at again after this long."""


@dataclass(frozen=True)
class Limits:
    """Messages per second per bot and per chat, per minute per group, edits per minute per
    group; 0 means unlimited."""

    global_per_second: float = 30
    per_chat_per_second: float = 1
    per_group_per_minute: float = 20
    margin: float = 0.001
    """Seconds added to each window (the spread of answers moves late sends on its own); this
    only absorbs timer rounding."""
    edits_per_group_per_minute: float = 20
    adaptive: bool = True
    """A 429 pauses its chat only, and 429s across chats lower the global rate (AIMD); False:
    a 429 pauses every send and the rates stay fixed (the behaviour before issue 17)."""
    count_at: str = "arrival"
    """"arrival": a send is counted when it is granted (it reaches Telegram one one-way delay
    later, as every other does) and moved by its answer's lateness; "completion": counted
    in flight until its answer, then at the answer (the behaviour before issue 17)."""


class RateLimiter:
    """Global, per-chat and per-group windows, the pauses 429s impose, and what the answers
    teach (`pacing`): the global rate and the groups' edit budget adapt, a send whose answer was
    late is counted as late as it can have arrived."""

    def __init__(self, limits: Limits, clock: Clock = time.monotonic, exposure: int = 0) -> None:
        self.limits = limits
        self._exposure = exposure
        """At most this many exposed grants at once (0: no bound); see `acquire(expose=True)`."""
        self._exposed = 0
        self._clock = clock
        self._arrival = limits.count_at == "arrival"
        self.trips = RoundTrips()
        self.rate = Aimd(limits.global_per_second, floor=min(1.0, limits.global_per_second))
        self.edit_rate = Aimd(
            limits.edits_per_group_per_minute, hold=60.0, step=1.0, min_step=0.25, across=False
        )
        self._global = make_window(limits.global_per_second, 1.0, limits.margin)
        self._chats: dict[int, SlidingWindow] = {}
        self._groups: dict[int, SlidingWindow] = {}
        self._edits: dict[int, SlidingWindow] = {}
        self._granted: dict[int, deque[float]] = {}
        self._paused_until = 0.0
        self._chat_paused: dict[int, float] = {}
        self._acquired = 0
        self.waited_seconds = 0.0
        self._waiters: list[tuple[float, int, int, asyncio.Future[None], bool, bool]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None

    def pause(self, seconds: float) -> None:
        """No request to any chat before `seconds` elapse."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def too_many(self, chat_id: int, seconds: float, edit: bool = False) -> None:
        """Telegram answered 429 with retry_after `seconds` to a request to `chat_id`.

        Adaptive: that chat waits `seconds`, the others go on, and 429s across chats lower the
        global rate (an edit's 429 lowers the groups' edit budget); fixed: every send waits."""
        if not self.limits.adaptive:
            return self.pause(seconds)
        now = self._clock()
        before = self._chat_paused.get(chat_id, 0.0)
        self._chat_paused[chat_id] = max(before, now + seconds)
        if edit and chat_id < 0:
            self.edit_rate.too_many(chat_id, now)
        elif self._global is not None and self.rate.too_many(
            chat_id, now, 0 < before <= now, self._sent(now)
        ):
            set_rate(self._global, self.rate.rate, 1.0, self.limits.margin)
        if self._waiters:
            self._poke()
        return None

    def _sent(self, now: float) -> int | None:
        """Sends counted in the last second (at arrival; None when counted at completion)."""
        if not self._arrival or self._global is None:
            return None
        stamps = self._global.stamps
        return len(stamps) - bisect.bisect_right(stamps, now - 1.0)

    @property
    def paused_until(self) -> float:
        """When the last pause ends (a chat's or every send's)."""
        now = self._clock()
        for chat in [c for c, until in self._chat_paused.items() if until <= now]:
            del self._chat_paused[chat]
        return max(self._paused_until, *self._chat_paused.values(), 0.0)

    def chat_paused_until(self, chat_id: int) -> float:
        """When the last pause of `chat_id` ends (0: never paused, or forgotten)."""
        return max(self._paused_until, self._chat_paused.get(chat_id, 0.0))

    def next_allowed(self, chat_id: int, now: float, edit: bool = False) -> float:
        """The earliest instant a message to `chat_id` may be sent (pure arithmetic)."""
        at = self._own_next(chat_id, now, edit, in_flight=True)
        if self._global is not None:
            at = max(at, self._global.next_allowed(now))
        return at

    def _windows(self, chat_id: int, edit: bool = False) -> list[SlidingWindow]:
        windows = [] if self._global is None else [self._global]
        chat = self._own(self._chats, chat_id, self.limits.per_chat_per_second, 1.0)
        if chat is not None:
            windows.append(chat)
        if chat_id < 0:
            if edit:  # the groups' edit budget, as 429s have taught it
                group = self._own(self._edits, chat_id, self.edit_rate.rate, 60.0)
                if group is not None:
                    set_rate(group, self.edit_rate.rate, 60.0, self.limits.margin)
            else:
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
            window = make_window(rate, period, self.limits.margin)
            if window is not None:
                windows[chat_id] = window
        return window

    def start(self, chat_id: int, edit: bool = False) -> None:
        """Count a send to `chat_id` in every window it belongs to: in flight until `finish`
        (counting at completion), or at once (counting at arrival)."""
        now = self._clock()
        for window in self._windows(chat_id, edit):
            if self._arrival:
                window.record(now)
                window.pending.append(now)
            else:
                window.in_flight += 1
        self._granted.setdefault(chat_id, deque()).append(now)
        if self._global is not None and self._global.next_allowed(now) > now:
            before = self.rate.rate
            self.rate.sent_at_rate()  # the rate held the others back: time to probe higher
            if self.rate.rate != before:
                set_rate(self._global, self.rate.rate, 1.0, self.limits.margin)

    def finish(self, chat_id: int, at: float, edit: bool = False) -> None:
        """The send started with `start` was answered (or failed) at `at`."""
        granted = self._granted.get(chat_id)
        if granted:
            sent = granted.popleft()
            if not granted:
                del self._granted[chat_id]
            late = self.trips.add(at - sent, at)
            if self._arrival and self.trips.dropped:
                self._delay_answered(self.trips.dropped)
            if self._arrival:
                for window in self._windows(chat_id, edit):
                    window.answered(sent)
                    if late > 0:  # slower than the fastest: it may have arrived that much later
                        window.move(sent, sent + late)
        if not self._arrival:
            for window in self._windows(chat_id, edit):
                window.in_flight -= 1
                window.record(at)
        self._acquired += 1
        if self._acquired % 4096 == 0:
            self._forget_idle(at)

    def _delay_answered(self, by: float) -> None:
        """The shortest round trip fell by `by`: every send answered before was counted that
        much too early (its lateness was measured from a slower shortest), so move them all."""
        if self._global is not None:
            self._global.delay_answered(by)
        for table in (self._chats, self._groups, self._edits):
            for window in table.values():
                window.delay_answered(by)

    def record(self, chat_id: int, at: float) -> None:
        """Count a message sent to `chat_id` that started and completed at `at`."""
        if self._arrival:
            for window in self._windows(chat_id):
                window.record(at)
            return
        for window in self._windows(chat_id):
            window.in_flight += 1
        for window in self._windows(chat_id):
            window.in_flight -= 1
            window.record(at)

    async def acquire(self, chat_id: int, expose: bool = False, edit: bool = False) -> float:
        """Wait until a message to `chat_id` (an edit: `edit`) is allowed and count it.

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
            and self.next_allowed(chat_id, started, edit) <= started
            and not (expose and self._exposed >= self._exposure)
        ):
            self.start(chat_id, edit)
            self._exposed += expose
            return 0.0
        grant: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._waiters,
            (
                self._own_next(chat_id, started, edit),
                next(self._order),
                chat_id,
                grant,
                expose,
                edit,
            ),
        )
        self._poke()
        try:
            await grant
        except asyncio.CancelledError:
            if grant.done() and not grant.cancelled():  # granted, but the sender went away
                self._unstart(chat_id, edit)
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

    def release(self, chat_id: int, edit: bool = False) -> None:
        """The send acquired for `chat_id` has completed (successfully or not)."""
        self.finish(chat_id, self._clock(), edit)
        if self._waiters:
            self._poke()

    def _own_next(self, chat_id: int, now: float, edit: bool, in_flight: bool = False) -> float:
        """When the chat's own windows and any pause allow it (sends in flight aside)."""
        at = max(now, self._paused_until, self._chat_paused.get(chat_id, 0.0))
        tables = (self._chats, self._edits if edit else self._groups)
        for table in tables if chat_id < 0 else tables[:1]:
            window = table.get(chat_id)
            if window is not None and (window.stamps or in_flight):
                at = max(at, window.next_allowed(now, in_flight))
        return at

    def _unstart(self, chat_id: int, edit: bool) -> None:
        granted = self._granted.get(chat_id)
        sent = granted.pop() if granted else None
        if granted is not None and not granted:
            del self._granted[chat_id]
        for window in self._windows(chat_id, edit):
            if not self._arrival:
                window.in_flight -= 1
            elif sent is not None:  # it stays counted, which is only cautious
                window.answered(sent)

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
            ready_at, order, chat_id, grant, expose, edit = waiters[0]
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
            if self.next_allowed(chat_id, now, edit) <= now:
                heapq.heappop(waiters)
                self.start(chat_id, edit)
                self._exposed += expose
                grant.set_result(None)
                continue
            # Its chat says later (or has a send of its own in flight, which the sequencer makes
            # rare): look at the others meanwhile.
            later = max(self._own_next(chat_id, now, edit), now + OWN_IN_FLIGHT_RECHECK)
            heapq.heapreplace(waiters, (later, order, chat_id, grant, expose, edit))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(None if math.isinf(seconds) else seconds):
                await self._wake.wait()

    def _forget_idle(self, now: float) -> None:
        for table in (self._chats, self._groups, self._edits):
            for key in [k for k, w in table.items() if w.idle(now)]:
                del table[key]
