"""Rate-limit arithmetic: the generic cell rate algorithm (GCRA), as a pure function.

The state is one timestamp per key, the theoretical arrival time (TAT); storing it in PostgreSQL
under a row lock makes the limit hold across replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RateDecision:
    """Whether one more request is allowed, the TAT to store, and how long to wait if not."""

    allowed: bool
    tat: datetime
    retry_after: float = 0.0


def gcra(tat: datetime | None, now: datetime, *, limit: int, period: timedelta) -> RateDecision:
    """Allow at most `limit` requests per `period`, all of them at once if they come in a burst."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    interval = period / limit
    start = max(tat or now, now)
    new_tat = start + interval
    allowed_at = new_tat - period
    if allowed_at > now:
        return RateDecision(False, start, (allowed_at - now).total_seconds())
    return RateDecision(True, new_tat)
