"""Is the notifier getting anywhere? The watch behind its stall check.

A consumer that makes no progress while events wait for it is stalled, whatever the reason (a
statement blocked on a lock, a bug that never resolves an event): `/readyz` and `/healthz` then
fail and the service stops itself, so its unacknowledged messages go back to RabbitMQ and the
standby consumer (single active consumer) takes over. Progress is anything that moves an event
on: a batch planned, a Telegram answer (any answer, errors included), an event settled, a retry
of a database that is unreachable (that outage is `/readyz`'s database check, not a stall).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ProgressWatch:
    """When work last moved on, and for how long it has not while work was waiting."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def note(self) -> None:
        """Something moved on just now (also call it when work arrives after an idle spell)."""
        self._last = self._clock()

    def stalled_for(self, waiting: int, excused_until: float = 0.0) -> float:
        """Seconds without progress while `waiting` events wait; 0 when nothing waits.

        Time before `excused_until` (a monotonic instant, e.g. the end of a pause Telegram
        imposed with a 429) does not count.
        """
        now = self._clock()
        if waiting <= 0:
            self._last = now
            return 0.0
        return max(0.0, now - max(self._last, excused_until))
