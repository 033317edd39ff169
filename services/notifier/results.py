"""Recording what became of each delivery: hand-over marks as soon as a request is written (on
their own connection), results in batches, and only then each event's outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.notifier.batching import Batcher, retry_while_unreachable
from services.notifier.config import ProcessorConfig
from services.notifier.progress import ProgressWatch
from services.notifier.ratelimit import RateLimiter
from services.notifier.records import (
    FINAL_STATUSES,
    DeliveryResult,
    DeliveryRow,
    DeliveryStatus,
    Outcome,
    Verdict,
)
from services.notifier.work import Edit, Item, Send
from shared.contract import DeadLetterReason

log = logging.getLogger("notifier")

MARK_TIMEOUT = 5.0
"""Seconds a batch of hand-over marks may take before it is given up (and only logged)."""

Recorded = tuple[DeliveryResult, asyncio.Future[Outcome], Outcome]
"""A result to write, and the event it settles once written."""
Mark = tuple[int, bool, bool]
"""(delivery id, request written?, holds an exposure slot)."""


def result_of(
    item: Item,
    row: DeliveryRow,
    status: DeliveryStatus,
    message_id: int | None,
    error: str | None,
    final: bool,
    attempts: int | None = None,
    dead_letter: DeadLetterReason | None = None,
    kept: dict[str, Any] | None = None,
) -> DeliveryResult:
    """The result of one event's delivery."""
    return DeliveryResult(
        delivery_id=row.id,
        event_id=item.event.event_id,
        event_type=item.event.type.value,
        user_id=item.event.user_id,
        status=status,
        telegram_message_id=message_id,
        error=error,
        attempts=row.attempts if attempts is None else attempts,
        final=final,
        dead_letter=dead_letter,
        kept=kept,
    )


class ResultStore(Protocol):
    """Where marks and results go (`NotifierStore`; an in-memory fake in unit tests)."""

    async def mark_handed(self, marks: Sequence[tuple[int, bool]]) -> None: ...

    async def finish(self, results: Sequence[DeliveryResult]) -> None: ...


@dataclass(eq=False)
class Results:
    """Writes marks and results in batches; settles each event once its result is written."""

    store: ResultStore
    limiter: RateLimiter
    progress: ProgressWatch
    config: ProcessorConfig
    _results: Batcher = field(init=False)
    _marks: Batcher = field(init=False)

    def __post_init__(self) -> None:
        self._results = Batcher(
            500, self.config.batch_wait, self._write_results, on_error=self._settle
        )
        # Written as soon as possible, in order, so a restart knows which `sending` rows
        # Telegram may already have acted on.
        self._marks = Batcher(1000, 0.0, self._write_marks, on_error=self._marks_failed)

    def mark(self, delivery_id: int, handed: bool, exposed: bool) -> None:
        """Queue a hand-over mark: the request was written (True) or definitely refused
        (False); `exposed`: it holds the rate limiter's exposure slot until written."""
        self._marks.add((delivery_id, handed, exposed))

    def record(
        self, result: DeliveryResult, future: asyncio.Future[Outcome], outcome: Outcome
    ) -> None:
        """Queue a result; `future` gets `outcome` once it is written."""
        self._results.add((result, future, outcome))

    def finish(self, entry: Send | Edit, attempts: int, verdict: Verdict) -> None:
        """Record how a send or an edit ended, for its event and every event its digest
        carried (they share its fate)."""
        status, message_id, error = verdict.status, verdict.message_id, verdict.error
        final = status in FINAL_STATUSES
        outcome = Outcome(status, error, verdict.dead_letter, message_id)
        carried = entry.folded if isinstance(entry, Send) else []
        for each in (entry, *carried):
            result = result_of(
                each.item,
                each.row,
                status,
                message_id,
                error,
                final,
                attempts,
                verdict.dead_letter,
                verdict.kept,
            )
            self._results.add((result, each.item.future, outcome))

    def cancel(self) -> None:
        """Drop the results not yet written (their events see cancellation)."""
        self._results.cancel()

    async def _write_marks(self, marks: list[Mark]) -> None:
        try:
            async with asyncio.timeout(MARK_TIMEOUT):
                await self.store.mark_handed([(row_id, handed) for row_id, handed, _ in marks])
        except Exception as exc:  # without marks a restart only resends: never lose the work
            log.warning("could not record %d hand-over marks: %r", len(marks), exc)
        finally:
            for _, _, exposed in marks:
                if exposed:
                    self.limiter.unexpose()

    def _marks_failed(self, marks: list[Mark], error: Exception) -> None:
        for _row, _handed, exposed in marks:
            if exposed:
                self.limiter.unexpose()

    async def _write_results(self, batch: list[Recorded]) -> None:
        # While the database is down the results wait (the RabbitMQ messages stay unacked);
        # `finish` itself keeps one unwritable row from losing the others.
        await retry_while_unreachable(
            "results",
            self.store.finish,
            [r for r, _, _ in batch],
            cap=self.config.db_retry_max,
            waiting=self.progress.note,
        )
        self._settle(batch, None)

    @staticmethod
    def _settle(batch: list[Recorded], error: Exception | None) -> None:
        """Settle each event with its outcome (the send is over, whether or not its result
        could be recorded: holding the message back would only send it again)."""
        for _result, future, outcome in batch:
            if not future.done():
                future.set_result(outcome)
