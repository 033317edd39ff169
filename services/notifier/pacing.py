"""Sliding windows, and what the rate limiter learns from Telegram's answers (pure logic, no
clock of its own).

`SlidingWindow` holds "at most N events in any interval of its length"; `set_rate` shapes one
for a rate that need not be whole.

`Aimd` keeps a rate between a floor and the configured ceiling: 429s on two or more chats close
together mean the real limit is lower than the rate (multiplicative decrease, at most once per
window so one overshoot lowers it once), and every second spent sending at the rate without one
raises it a little (additive increase). Each decrease halves the increase step (down to a
minimum), so the sender probes the real limit more and more gently: the 429s it costs fall over
time. Reaching the ceiling again restores the step.

`RoundTrips` keeps the shortest round trip of the last minute's answers: half of it is the one-way
delay (a send reaches Telegram that long after it is written, and that is when Telegram counts
it). Every send reaches it one such delay after its grant, give or take the spread of the
answers: an answer that took longer than the shortest moves its send's stamp by that much, to the
latest instant it can have arrived (`SlidingWindow.move`), which is in time for every window
longer than a round trip; a send still unanswered when its window turns counts as happening now,
and one answered only after that counts where it can have arrived. When the shortest falls (the
first answers were slowed by cold connections or a queued burst), every send answered before is
moved by the fall (`SlidingWindow.delay_answered`): its lateness was measured from too slow a
shortest.
"""

from __future__ import annotations

import bisect
import contextlib
import math
from collections import deque
from dataclasses import dataclass, field


class SlidingWindow:
    """At most `limit` events in any interval of `period` seconds.

    `stamps` are counted events, in order; `in_flight` events have started and count as
    happening now (counting at completion). Counting at arrival, `pending` holds the stamps of
    sends not yet answered: one still unanswered when its stamp leaves the window counts as
    happening now, so a request that hangs can never let the next window's overlap it.
    """

    __slots__ = ("in_flight", "limit", "pending", "period", "stamps")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.stamps: deque[float] = deque()
        self.in_flight = 0
        self.pending: deque[float] = deque()

    def next_allowed(self, now: float, in_flight: bool = True) -> float:
        """The earliest instant ≥ now at which one more event fits; infinity when only the
        completion of an in-flight event can make room (`in_flight=False`: ignore those)."""
        stamps = self.stamps
        while stamps and stamps[0] <= now - self.period:
            stamps.popleft()
        flying = self.in_flight
        if self.pending and self.pending[0] <= now - self.period:
            flying += bisect.bisect_right(self.pending, now - self.period)
        excess = len(stamps) + (flying if in_flight else 0) - self.limit
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

    def answered(self, stamp: float) -> None:
        """The send stamped `stamp` (counting at arrival) has its answer."""
        with contextlib.suppress(ValueError):
            self.pending.remove(stamp)

    def move(self, old: float, new: float) -> None:
        """Count the event stamped `old` at `new` instead; also when `old` has already left the
        window (an answer slower than the window: it counted as happening now while `pending`,
        and must go on counting where it can have arrived, or the next window overlaps it)."""
        with contextlib.suppress(ValueError):
            self.stamps.remove(old)
        bisect.insort(self.stamps, new)

    def delay_answered(self, by: float) -> None:
        """Count every answered event `by` seconds later (those still `pending` stay at their
        grant): the shortest round trip fell, so each was moved too little."""
        if not self.stamps:
            return
        waiting = set(self.pending)
        self.stamps = deque(sorted(t if t in waiting else t + by for t in self.stamps))

    def idle(self, now: float) -> bool:
        """True when no event in the window constrains the future."""
        return not self.in_flight and (not self.stamps or self.stamps[-1] <= now - self.period)


def make_window(rate: float, period: float, margin: float) -> SlidingWindow | None:
    if rate <= 0:
        return None
    made = SlidingWindow(1, period)
    set_rate(made, rate, period, margin)
    return made


def set_rate(window: SlidingWindow, rate: float, period: float, margin: float) -> None:
    """Make `window` allow `rate` events per `period`: ⌊rate⌋ in any window of `period` (the
    server's window: a shorter one would let two bursts into one of Telegram's), fractional
    rates below one as one per period/rate."""
    if rate >= 1:
        window.limit, window.period = int(rate), period + margin
    else:
        window.limit, window.period = 1, period / rate + margin


class Aimd:
    """Additive increase, multiplicative decrease of a rate (per `hold` seconds).

    `ceiling`: the configured rate, the start and the most it climbs back to; `floor`: it never
    goes lower; `step`: the increase per second of sending at the rate, after start or the
    ceiling, halved by each decrease down to `min_step`; `factor`: a decrease multiplies the
    rate by at most this; `hold`: seconds after a decrease during which further 429s (answers to
    requests sent at the old rate) do not lower it again; `within`: how close in time 429s on
    two chats must be to lower it; `across=False`: any 429 lowers it, one chat is enough.
    """

    def __init__(
        self,
        ceiling: float,
        *,
        floor: float = 1.0,
        step: float = 1.0,
        min_step: float = 0.125,
        factor: float = 0.85,
        hold: float = 1.0,
        within: float = 2.0,
        across: bool = True,
    ) -> None:
        self.ceiling, self.floor = ceiling, min(floor, ceiling)
        self.step, self.min_step, self.factor = step, min_step, factor
        self.hold, self.within, self.across = hold, within, across
        self.rate = ceiling
        self.decreases = 0
        self._increase = step
        self._last_decrease = float("-inf")
        self._recent: deque[tuple[float, object]] = deque()
        self._refused: deque[float] = deque()

    def too_many(
        self, chat_id: int, now: float, honoured: bool = False, sent: int | None = None
    ) -> bool:
        """A 429 for `chat_id` at `now`; True when it lowered the rate (429s on two chats
        within `within` seconds, and no decrease in the last `hold` seconds). `honoured`: the
        chat had waited out its previous 429's retry_after, so this one is not about the chat's
        own pace: it counts as another chat's. `sent`: how many were sent in the last `hold`
        seconds; less the 429s among them, what got through, which the rate falls to at once
        when that is lower than a multiplicative step (far above the real limit, one step at a
        time would cost a 429 for every excess send of every second on the way down)."""
        refused = self._refused
        refused.append(now)
        while refused[0] < now - self.hold:
            refused.popleft()
        if now - self._last_decrease < self.hold:  # answers to sends at the old rate
            return False
        recent = self._recent
        while recent and recent[0][0] < now - self.within:
            recent.popleft()
        across = any(chat != chat_id for _, chat in recent) or not self.across
        recent.append((now, (chat_id, now) if honoured else chat_id))
        if not across:
            return False
        lower = self.rate * self.factor
        if sent is not None and sent - len(refused) > 0:
            lower = min(lower, sent - len(refused))
        self.rate = max(self.floor, lower)
        self._increase = max(self.min_step, self._increase / 2)
        self._last_decrease = now
        self.decreases += 1
        recent.clear()
        return True

    def sent_at_rate(self) -> None:
        """One send granted while the rate held others back: 1/rate of a second at the rate."""
        if self.rate >= self.ceiling:
            return
        self.rate = min(self.ceiling, self.rate + self._increase / self.rate)
        if self.rate >= self.ceiling:
            self._increase = self.step


@dataclass
class RoundTrips:
    """The shortest round trip answered in the last `horizon` seconds: the way there and back
    with no wait on either side. A send whose answer took `late` seconds longer may have reached
    Telegram up to `late` seconds later than the fastest would have (all of the extra time is
    taken as the way there, which is cautious).

    The horizon is time, not a number of answers: an answer slowed by a busy moment (ours or
    the network's) says nothing about the path, and 512 answers are half a second at paid
    broadcast's 1000/s, after which the shortest rose to the busy moment's and the sends of it
    were moved too little (429s at 1000/s on a loaded machine). A path that really got slower
    costs at most a horizon of cautious counting."""

    horizon: float = 60.0
    _minima: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    """(answered at, round trip), round trips increasing: the sliding minimum."""
    dropped: float = field(default=0.0, init=False)
    """How much the last `add` lowered the shortest (0: it did not, or it was the first)."""

    def add(self, seconds: float, at: float = 0.0) -> float:
        """One request answered at `at` took `seconds` from being granted to its answer;
        returns how much longer than the shortest recent one it took."""
        minima = self._minima
        seconds = max(0.0, seconds)
        before = minima[0][1] if minima else math.inf
        while minima and minima[-1][1] >= seconds:
            minima.pop()
        minima.append((at, seconds))
        while minima[0][0] < at - self.horizon:
            minima.popleft()
        shortest = minima[0][1]
        self.dropped = before - shortest if math.isfinite(before) and shortest < before else 0.0
        return seconds - shortest

    @property
    def shortest(self) -> float:
        """The shortest recent round trip (0 before any answer)."""
        return self._minima[0][1] if self._minima else 0.0

    @property
    def one_way(self) -> float:
        """Half the shortest recent round trip: how long a request takes to reach Telegram."""
        return self.shortest / 2
