"""What a failed send or edit means for the message: try again (and when), or the verdict that ends
it. Pure: the caller does what an answer means beyond the message (pause every send on a 429,
tell the linker a chat is gone or moved), sleeps, and counts."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

from services.notifier.records import DeliveryStatus, Verdict
from services.notifier.telegram import Failure, SendError
from shared.contract import DeadLetterReason


@dataclass(frozen=True, slots=True)
class Retry:
    """Try the same message again, after `wait` seconds; `reason` names it in the metrics."""

    reason: str
    wait: float = 0.0


PACED = Retry("retry_after")
"""A 429: try again once the pause Telegram imposed is over (not counted as an attempt)."""
MOVED = Retry("migrated")
"""A group became a supergroup: send again at once, to its new id."""

Judge = Callable[[SendError, int, int], Verdict | Retry]
"""(error, attempts so far, 429s so far) -> try again, or the verdict that stops."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times, and how far apart, a message is tried."""

    max_attempts: int = 6
    max_rate_limited: int = 20
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    jitter: Callable[[], float] = random.random
    """A draw in [0, 1) spreading the backoffs (tests fix it)."""

    def after_send_failure(
        self, error: SendError, attempts: int, rate_limited: int
    ) -> Verdict | Retry:
        """A failed sendMessage: 429s and transient failures are retried within bounds, a
        migrated group at its new id; a chat gone is undeliverable, a request that may have
        reached Telegram uncertain (never resent); anything else is dead-lettered."""
        failure = error.failure
        if failure is Failure.RETRY_AFTER:
            if rate_limited + 1 >= self.max_rate_limited:
                return Verdict(DeliveryStatus.FAILED, None, str(error), "retries_exhausted")
            return PACED
        if failure is Failure.MIGRATED and error.migrate_to_chat_id:
            return MOVED
        if failure is Failure.CHAT_GONE:
            return Verdict(DeliveryStatus.UNDELIVERABLE, None, str(error))
        if failure is Failure.UNCERTAIN:
            return Verdict(DeliveryStatus.UNCERTAIN, None, str(error))
        if failure is Failure.TRANSIENT and attempts < self.max_attempts:
            return Retry("transient", self.backoff(attempts))
        reason: DeadLetterReason = (
            "retries_exhausted" if failure is Failure.TRANSIENT else "undeliverable"
        )
        return Verdict(DeliveryStatus.FAILED, None, str(error), reason)

    def after_edit_failure(
        self, error: SendError, attempts: int, rate_limited: int
    ) -> Verdict | Retry:
        """As for sends, except: a timed-out edit is safely repeated (editing is idempotent); a
        migrated group's old messages are not ours to edit; a message that cannot be edited
        (deleted, too old) is simply left as it is."""
        if error.failure is Failure.UNCERTAIN:
            error = dataclasses.replace(error, failure=Failure.TRANSIENT)
        if error.failure is Failure.MIGRATED and error.migrate_to_chat_id:
            return Verdict(DeliveryStatus.SKIPPED, None, f"chat migrated: {error}")
        if error.failure is Failure.REJECTED:
            return Verdict(DeliveryStatus.UNDELIVERABLE, None, str(error))
        return self.after_send_failure(error, attempts, rate_limited)

    def backoff(self, attempts: int) -> float:
        """Seconds to wait before attempt `attempts + 1`: exponential, capped, with jitter."""
        base = min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1))
        return base * (0.5 + self.jitter() / 2)
