"""The notifier's core, from a validated event to a recorded Telegram delivery: the rooms wired
together behind one face (`Processor`), and what every caller needs of it.

Events arrive one by one (one task per RabbitMQ delivery). `intake` groups them into batches and
plans each batch in one transaction (`planning` decides each event's fate); `delivery` sends each
message in its chat's arrival order under the rate limiter, retried as `retry` rules, folding
bursts (`digests`) and editing posts' messages (`edits`); `results` writes the outcomes (again in
batches) before the RabbitMQ message is acknowledged. A message for a user in quiet hours is
`held` in the database and sent later by `release`.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

from services.common import tracing
from services.notifier import metrics
from services.notifier.config import ProcessorConfig
from services.notifier.delivery import Delivery, InternalEvents
from services.notifier.intake import ChatIdDecoder, Clock, Intake
from services.notifier.notes import Notes, early_letter
from services.notifier.planning import dedupe_key
from services.notifier.progress import ProgressWatch
from services.notifier.ratelimit import RateLimiter
from services.notifier.records import Outcome
from services.notifier.release import Release
from services.notifier.results import Results
from services.notifier.store import NotifierStore
from services.notifier.telegram import TelegramSender
from services.notifier.work import Item
from shared.contract import Event

__all__ = [
    "ChatIdDecoder",
    "Clock",
    "InternalEvents",
    "Outcome",
    "Processor",
    "ProcessorConfig",
    "exposure_bound",
    "utc_now",
]


EXPOSURE_SECONDS = 0.03
"""How much sending a crash may repeat: a mark takes a few milliseconds to commit under load, so
a tighter bound throttles paid broadcasts (5 slots at 1000/s reached 71 % of it, 15 slots 92 %)."""


def exposure_bound(global_per_second: float) -> int:
    """How many requests may be written to Telegram with their hand-over mark not yet committed
    (the only ones a crash can send twice): `EXPOSURE_SECONDS` of sending at the global rate, at
    least one, so at Telegram's default 30/s a crash duplicates at most one message (30 at paid
    broadcast's 1000/s); 0 (no bound) when the rate is unlimited. The rate limiter enforces it
    (`RateLimiter(exposure=...)`)."""
    if global_per_second <= 0:
        return 0
    return max(1, math.ceil(global_per_second * EXPOSURE_SECONDS))


def utc_now() -> datetime:
    """The wall clock in UTC."""
    return datetime.now(UTC)


class Processor:
    """Turns validated events into Telegram messages, exactly once per dedupe key."""

    def __init__(
        self,
        *,
        store: NotifierStore,
        sender: TelegramSender,
        limiter: RateLimiter,
        chat_ids: ChatIdDecoder,
        internal_events: InternalEvents,
        config: ProcessorConfig | None = None,
        callback_key: bytes = b"",
        clock: Clock = utc_now,
    ) -> None:
        config = config or ProcessorConfig()
        self._store = store
        self._limiter = limiter
        self._progress = ProgressWatch()
        results = Results(store, limiter, self._progress, config)
        self.notes = Notes(store.pool)
        """The delivery log's side notes: refused attempts, early dead letters."""
        self._delivery = Delivery(
            sender,
            limiter,
            internal_events,
            results,
            self._progress,
            callback_key,
            config,
            self.notes,
        )
        dispatch = self._delivery.dispatch
        self._intake = Intake(
            store, chat_ids, clock, callback_key, self._progress, dispatch, config
        )
        self._release = Release(store, chat_ids, clock, self._delivery, config)
        self.in_flight = 0
        self.settled = 0

    def submit(self, event: Event, data: Any) -> asyncio.Future[Outcome]:
        """Queue one event (synchronously, keeping arrival order); the future resolves once its
        outcome is durably recorded."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if self.in_flight == 0:
            self._progress.note()  # the clock of a stall starts when work arrives
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        key = dedupe_key(event, data)
        future.add_done_callback(lambda done: self._settled(event, key, done))
        self._intake.add(Item(event, data, future, key, tracing.current()))
        return future

    async def handle(self, event: Event, data: Any) -> Outcome:
        """Process one event; returns once its outcome is durably recorded."""
        return await self.submit(event, data)

    def _settled(self, event: Event, key: str, future: asyncio.Future[Outcome]) -> None:
        self.in_flight -= 1
        self.settled += 1
        self._progress.note()
        metrics.IN_FLIGHT.dec()
        if not future.cancelled():
            outcome = future.result()
            metrics.EVENTS.labels(event.type.value, outcome.status).inc()
            if outcome.status == "error":  # dead-lettered before its delivery row was written
                self.notes.dead_lettered(early_letter(event, key, outcome))

    def stalled_for(self) -> float:
        """Seconds without progress while events wait (0 when none wait); a pause Telegram
        imposed (429 `retry_after`) is not counted. See `services/notifier/progress.py`."""
        stalled = self._progress.stalled_for(self.in_flight, self._limiter.paused_until)
        metrics.STALLED.set(stalled)  # the watchdog asks every second: the gauge follows
        return stalled

    async def release_loop(self, stopping: asyncio.Event) -> None:
        """Release due held deliveries every `release_interval` seconds until `stopping`."""
        await self._release.loop(stopping)

    async def release_held(self) -> int:
        """Send every held delivery whose quiet hours are over, one message per user (a fold
        when several wait); returns the number of users released."""
        return await self._release.release()

    async def close(self) -> None:
        """Release the processor's own database connection (after `abort` or a drain)."""
        await self._store.close()

    def abort(self) -> None:
        """Stop every unfinished event (shutdown after the drain deadline).

        Their RabbitMQ messages stay unacknowledged and are redelivered to the next consumer;
        their deliveries stay `sending`, so the next consumer sends them.
        """
        self._delivery.cancel()
        self._intake.cancel()
        self._delivery.results.cancel()
