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

`RoundTrips` keeps the round trips of recent answers: half the shortest is the one-way delay (a
send reaches Telegram that long after it is written, and that is when Telegram counts it), and
the median spread of the others above it is the margin a window adds so that a request that
travels slower than usual still arrives inside the budget. An answer later than that moves its
send's stamp to the latest instant it can have arrived (`SlidingWindow.move`).
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
        """Count the event stamped `old` at `new` instead (nothing if it has expired)."""
        try:
            self.stamps.remove(old)
        except ValueError:
            return
        bisect.insort(self.stamps, new)

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
    """The round trips of the last `size` answers: one-way delay and margin."""

    size: int = 512
    quantile: float = 0.5
    """The margin is the spread at this quantile: a send slower than that is counted later
    when its answer comes (`SlidingWindow.move`), which is in time for every window longer than a
    round trip; the margin covers sends still on their way when a window turns."""
    cap: float = 0.25
    """The margin never exceeds this (a stalled answer must not stop sending)."""
    _samples: deque[float] = field(default_factory=deque, init=False)
    _margin: float = field(default=0.0, init=False)
    _added: int = field(default=0, init=False)

    def add(self, seconds: float) -> bool:
        """One answered request took `seconds` from being granted to its answer; True when
        the margin was re-read."""
        samples = self._samples
        samples.append(max(0.0, seconds))
        if len(samples) > self.size:
            samples.popleft()
        self._added += 1
        if self._added % 32 != 1:  # the quantile is re-read every 32 answers, not every one
            return False
        self._margin = self._spread()
        return True

    @property
    def shortest(self) -> float:
        """The shortest recent round trip (0 before any answer)."""
        return min(self._samples) if self._samples else 0.0

    @property
    def one_way(self) -> float:
        """Half the shortest recent round trip (0 before any answer)."""
        return min(self._samples) / 2 if self._samples else 0.0

    @property
    def margin(self) -> float:
        """The spread of recent round trips above the shortest, at `quantile`: how much later
        than the fastest a request may reach Telegram (all of the extra time is taken as the
        way there, which is cautious)."""
        return self._margin

    def _spread(self) -> float:
        ordered = sorted(self._samples)
        high = ordered[min(len(ordered) - 1, int(self.quantile * len(ordered)))]
        return min(self.cap, high - ordered[0])
