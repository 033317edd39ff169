"""The notifier's core: from a validated event to a recorded Telegram delivery.

Events arrive one by one (one task per RabbitMQ delivery) and are grouped into small batches so
the database work is one transaction per batch: the activity record, the link lookup, the daily
aggregation and the delivery intent. Each message is then sent in its chat's arrival order under
the rate limiter, retried within bounds, and its result written (again in batches) before the
RabbitMQ message is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg_pool import PoolTimeout

from services.common.logging import log_context, mask_chat_id
from services.notifier import metrics
from services.notifier.ratelimit import ChatSequencer, RateLimiter
from services.notifier.render import (
    DailyReport,
    PlatformTotals,
    platform_key,
    render_automation_executed,
    render_daily_summary,
    render_post_failure,
    render_post_success,
)
from services.notifier.store import (
    FINAL_STATUSES,
    ActivityRow,
    DeliveryIntent,
    DeliveryResult,
    DeliveryRow,
    Link,
    NotifierStore,
    SummaryWindow,
)
from services.notifier.telegram import Failure, SendError, TelegramSender
from shared.contract import (
    ACTIVITY_TYPES,
    AutomationExecutedData,
    DailySummaryData,
    DeadLetterReason,
    Event,
    PostFailureData,
    PostSuccessData,
)

log = logging.getLogger("notifier")

TRANSIENT_DB_ERRORS = (psycopg.OperationalError, PoolTimeout, OSError, TimeoutError)
"""Errors that mean the database is unreachable for now, not that the work is wrong."""


class ChatIdDecoder(Protocol):
    """Turns the stored (possibly encrypted) chat id into Telegram's integer id."""

    def decrypt(self, stored: str) -> int: ...


class InternalEvents(Protocol):
    """Publishes the notifier's `telegram.*` events for the linker."""

    async def chat_gone(self, user_id: str, error: SendError) -> None: ...

    async def chat_migrated(self, user_id: str, new_chat_id: int) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What became of one event; `dead_letter` set means: put the message in the DLQ."""

    status: str
    reason: str | None = None
    dead_letter: DeadLetterReason | None = None
    telegram_message_id: int | None = None


@dataclass(frozen=True)
class ProcessorConfig:
    """Batching and retry bounds."""

    batch_size: int = 200
    batch_wait: float = 0.003
    max_attempts: int = 6
    max_rate_limited: int = 20
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    db_retry_max: float = 10.0


@dataclass
class _Item:
    event: Event
    data: Any
    future: asyncio.Future[Outcome]
    dedupe_key: str = ""


@dataclass
class _Send:
    item: _Item
    row: DeliveryRow
    chat_id: int
    text: str
    ticket: asyncio.Future[None]
    started: float = field(default_factory=time.monotonic)


def dedupe_key(event: Event, data: Any) -> str:
    """The key under which at most one message is sent for this event."""
    if isinstance(data, DailySummaryData):
        base = f"daily_summary:{event.user_id}:{data.date.isoformat()}"
        return f"{base}:resend:{event.event_id}" if data.resend else base
    return str(event.event_id)


def render(event: Event, data: Any, report: DailyReport | None) -> str:
    """The message text of an event (the daily report is aggregated before)."""
    if isinstance(data, PostSuccessData):
        return render_post_success(data, event.occurred_at)
    if isinstance(data, PostFailureData):
        return render_post_failure(data, event.occurred_at)
    if isinstance(data, AutomationExecutedData):
        return render_automation_executed(data, event.occurred_at)
    if isinstance(data, DailySummaryData):
        assert report is not None
        return render_daily_summary(report)
    raise TypeError(f"no template for {event.type}")


def report_from_data(data: DailySummaryData) -> DailyReport:
    """A daily report from totals the publisher supplied (the seed's shape)."""
    return DailyReport(
        day=data.date,
        total_posts=data.total_posts or 0,
        successful_posts=data.successful_posts or 0,
        failed_posts=data.failed_posts or 0,
        total_engagement=data.total_engagement or 0,
        platforms={
            platform_key(k): PlatformTotals(v.posts, v.engagement)
            for k, v in (data.platforms or {}).items()
        },
    )


def activity_row(event: Event, data: Any) -> ActivityRow:
    """What the daily summary needs to remember of a platform event."""
    if isinstance(data, PostSuccessData):
        return ActivityRow(
            event.event_id,
            event.user_id,
            event.type,
            event.occurred_at,
            platform_key(data.platform),
            data.likes,
            data.comments,
            {"post_id": data.post_id, "post_url": data.post_url},
        )
    if isinstance(data, PostFailureData):
        return ActivityRow(
            event.event_id,
            event.user_id,
            event.type,
            event.occurred_at,
            platform_key(data.platform),
            0,
            0,
            {"post_id": data.post_id, "error": data.error[:500]},
        )
    assert isinstance(data, AutomationExecutedData)
    return ActivityRow(
        event.event_id,
        event.user_id,
        event.type,
        event.occurred_at,
        None,
        0,
        0,
        {"automation_name": data.automation_name[:200], "platforms": data.platforms[:50]},
    )


def skip_reason(event: Event, link: Link | None) -> str | None:
    """Why this user gets no message, or None when the message should be sent."""
    if link is None:
        return "not linked"
    if not link.enabled or not link.chat_id:
        return "notifications disabled"
    if event.type.value in link.muted_types:
        return "type muted"
    return None


class Batcher:
    """Runs `flush` on groups of queued items, one group at a time, in arrival order.

    An idle batcher waits `wait` seconds for company before flushing; while a flush runs, new
    items gather into the next group (up to `size`), so batches grow with the load.
    """

    def __init__(self, size: int, wait: float, flush: Callable[[list[Any]], Awaitable[None]]):
        self._size = size
        self._wait = wait
        self._flush = flush
        self._items: list[Any] = []
        self._worker: asyncio.Task[None] | None = None
        self._full = asyncio.Event()

    def add(self, item: Any) -> None:
        """Queue one item (synchronously, so arrival order is kept)."""
        self._items.append(item)
        if len(self._items) >= self._size:
            self._full.set()
        if self._worker is None:
            self._worker = asyncio.create_task(self._work())

    async def _work(self) -> None:
        try:
            while self._items:
                if len(self._items) < self._size:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._wait):
                            await self._full.wait()
                self._full.clear()
                batch, self._items = self._items[: self._size], self._items[self._size :]
                await self._flush(batch)
        finally:
            self._worker = None

    def cancel(self) -> None:
        """Cancel the running flush and drop queued items (their owners see cancellation)."""
        if self._worker is not None:
            self._worker.cancel()
        for item in self._items:
            future = item.future if hasattr(item, "future") else item[1]
            future.cancel()
        self._items = []


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
    ) -> None:
        self._store = store
        self._sender = sender
        self._limiter = limiter
        self._chat_ids = chat_ids
        self._internal = internal_events
        self._config = config or ProcessorConfig()
        self._sequencer = ChatSequencer()
        self._prepare = Batcher(
            self._config.batch_size, self._config.batch_wait, self._prepare_batch
        )
        self._results = Batcher(500, self._config.batch_wait, self._write_results)
        self._sends: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.settled = 0

    def submit(self, event: Event, data: Any) -> asyncio.Future[Outcome]:
        """Queue one event (synchronously, keeping arrival order); the future resolves once its
        outcome is durably recorded."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        future.add_done_callback(lambda done: self._settled(event, done))
        self._prepare.add(_Item(event, data, future, dedupe_key(event, data)))
        return future

    async def handle(self, event: Event, data: Any) -> Outcome:
        """Process one event; returns once its outcome is durably recorded."""
        return await self.submit(event, data)

    def _settled(self, event: Event, future: asyncio.Future[Outcome]) -> None:
        self.in_flight -= 1
        self.settled += 1
        metrics.IN_FLIGHT.dec()
        if not future.cancelled():
            metrics.EVENTS.labels(event.type.value, future.result().status).inc()

    def abort(self) -> None:
        """Stop every unfinished event (shutdown after the drain deadline).

        Their RabbitMQ messages stay unacknowledged and are redelivered to the next consumer;
        their deliveries stay `sending`, so the next consumer sends them.
        """
        for task in list(self._sends):
            task.cancel()
        for batcher in (self._prepare, self._results):
            batcher.cancel()

    # -- batch preparation ------------------------------------------------------------------

    async def _prepare_batch(self, items: list[_Item]) -> None:
        metrics.BATCH_SIZE.observe(len(items))
        delay = 0.1
        while True:
            try:
                plan = await self._plan(items)
                break
            except TRANSIENT_DB_ERRORS as exc:  # the database is down: hold the batch, retry
                log.warning("database unavailable, retrying batch: %r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._config.db_retry_max)
            except Exception as exc:  # a bug or bad data: dead-letter, never crash or loop
                log.exception("batch failed")
                for item in items:
                    if not item.future.done():
                        item.future.set_result(
                            Outcome("error", f"{type(exc).__name__}: {exc}", "processing_error")
                        )
                return
        self._dispatch(*plan)

    async def _plan(
        self, items: list[_Item]
    ) -> tuple[list[_Item], dict[str, DeliveryRow], dict[str, tuple[int, str] | str]]:
        """One transaction: record activity, read links, aggregate, create delivery rows."""
        async with self._store.pool.connection() as conn, conn.transaction():
            done = await self._store.processed(conn, [i.event.event_id for i in items])
            fresh = [i for i in items if i.event.event_id not in done]
            await self._store.record_activity(
                conn,
                (activity_row(i.event, i.data) for i in fresh if i.event.type in ACTIVITY_TYPES),
            )
            links = await self._store.links(conn, (i.event.user_id for i in fresh))
            firsts: dict[str, _Item] = {}
            for item in fresh:
                firsts.setdefault(item.dedupe_key, item)
            windows = [
                SummaryWindow(i.dedupe_key, i.event.user_id, i.data.date, i.data.timezone)
                for i in firsts.values()
                if isinstance(i.data, DailySummaryData) and not i.data.has_totals
            ]
            reports = await self._store.daily_reports(conn, windows)
            plans: dict[str, tuple[int, str] | str] = {}
            intents = []
            for key, item in firsts.items():
                link = links.get(item.event.user_id)
                reason = skip_reason(item.event, link)
                chat_ref = None
                if reason is None and link is not None and link.chat_id is not None:
                    chat_id = self._chat_ids.decrypt(link.chat_id)
                    chat_ref = mask_chat_id(chat_id)
                    report = reports.get(key)
                    if isinstance(item.data, DailySummaryData) and item.data.has_totals:
                        report = report_from_data(item.data)
                    plans[key] = (chat_id, render(item.event, item.data, report))
                else:
                    plans[key] = reason or "skipped"
                intents.append(
                    DeliveryIntent(
                        key,
                        item.event.event_id,
                        item.event.type.value,
                        item.event.user_id,
                        chat_ref,
                        "sending" if chat_ref else "skipped",
                    )
                )
            rows = await self._store.begin_deliveries(conn, intents)
            skipped = [
                _result(firsts[k], rows[k], "skipped", None, plans[k], final=True)  # type: ignore[arg-type]
                for k in rows
                if isinstance(plans[k], str) and rows[k].status == "skipped"
            ]
            await self._store.mark_processed(conn, skipped)
        return items, rows, plans

    def _dispatch(
        self,
        items: list[_Item],
        rows: dict[str, DeliveryRow],
        plans: dict[str, tuple[int, str] | str],
    ) -> None:
        """Resolve duplicates and skips; queue sends in arrival order (tickets taken here)."""
        leaders: dict[str, _Item] = {}
        for item in items:
            row = rows.get(item.dedupe_key)
            plan = plans.get(item.dedupe_key)
            leader = leaders.setdefault(item.dedupe_key, item)
            if row is None or plan is None:
                item.future.set_result(Outcome("duplicate", "already processed"))
            elif leader is not item:
                _chain(leader.future, item.future)
            elif isinstance(plan, str):
                status = "skipped" if row.status == "skipped" else "duplicate"
                item.future.set_result(Outcome(status, plan))
            elif row.status in FINAL_STATUSES:
                item.future.set_result(Outcome("duplicate", f"already {row.status}"))
            else:
                chat_id, text = plan
                send = _Send(item, row, chat_id, text, self._sequencer.enter(chat_id))
                task = asyncio.create_task(self._send(send))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)

    # -- sending ------------------------------------------------------------------------------

    async def _send(self, send: _Send) -> None:
        item = send.item
        chat_id = send.chat_id
        attempts = send.row.attempts
        rate_limited = 0
        with log_context(event_id=str(item.event.event_id), user_id=item.event.user_id):
            try:
                await send.ticket
                while True:
                    waited = await self._limiter.acquire(chat_id)
                    metrics.RATE_WAIT.observe(waited)
                    attempts += 1
                    started = time.perf_counter()
                    try:
                        message_id = await self._sender.send_text(chat_id, send.text)
                    except SendError as error:
                        self._limiter.release(chat_id)
                        metrics.TELEGRAM_ERRORS.labels(error.failure.value).inc()
                        verdict = await self._after_failure(item, error, attempts, rate_limited)
                        if verdict is None:  # retry
                            if error.failure is Failure.RETRY_AFTER:
                                rate_limited += 1
                                attempts -= 1  # a 429 is Telegram pacing us, not a failed attempt
                            elif error.failure is Failure.MIGRATED and error.migrate_to_chat_id:
                                chat_id = error.migrate_to_chat_id
                            continue
                        self._finish(send, attempts, *verdict)
                        return
                    except BaseException:
                        self._limiter.release(chat_id)
                        raise
                    self._limiter.release(chat_id)
                    metrics.SEND_LATENCY.observe(time.perf_counter() - started)
                    metrics.SENT.labels(item.event.type.value).inc()
                    metrics.LAG.observe(max(0.0, time.time() - item.event.occurred_at.timestamp()))
                    self._finish(send, attempts, "sent", message_id, None, None)
                    return
            except asyncio.CancelledError:
                if not item.future.done():
                    item.future.cancel()
                raise
            except Exception as exc:  # a bug, or the broker gone mid-way: dead-letter, go on
                log.exception("sending failed unexpectedly")
                problem = f"{type(exc).__name__}: {exc}"
                self._finish(send, attempts, "failed", None, problem, "processing_error")
            finally:
                self._sequencer.leave(send.chat_id, send.ticket)

    async def _after_failure(
        self, item: _Item, error: SendError, attempts: int, rate_limited: int
    ) -> tuple[str, int | None, str, DeadLetterReason | None] | None:
        """None to retry, or (status, message id, error, dead-letter reason) to stop."""
        failure = error.failure
        if failure is Failure.RETRY_AFTER:
            self._limiter.pause(error.retry_after or 1.0)
            metrics.RETRIES.labels("retry_after").inc()
            if rate_limited + 1 >= self._config.max_rate_limited:
                return "failed", None, str(error), "retries_exhausted"
            return None
        if failure is Failure.MIGRATED and error.migrate_to_chat_id:
            log.info(
                "chat migrated to a supergroup, resending to %s",
                mask_chat_id(error.migrate_to_chat_id),
            )
            await self._internal.chat_migrated(item.event.user_id, error.migrate_to_chat_id)
            metrics.RETRIES.labels("migrated").inc()
            return None
        if failure is Failure.CHAT_GONE:
            log.info("chat refused by Telegram, disabling the link: %s", error)
            await self._internal.chat_gone(item.event.user_id, error)
            return "undeliverable", None, str(error), None
        if failure is Failure.UNCERTAIN:
            log.warning("send timed out after the request was sent; not retried: %s", error)
            return "uncertain", None, str(error), None
        if failure is Failure.TRANSIENT and attempts < self._config.max_attempts:
            metrics.RETRIES.labels("transient").inc()
            await asyncio.sleep(self._backoff(attempts))
            return None
        reason: DeadLetterReason = (
            "retries_exhausted" if failure is Failure.TRANSIENT else "undeliverable"
        )
        return "failed", None, str(error), reason

    def _backoff(self, attempts: int) -> float:
        base = min(self._config.backoff_max, self._config.backoff_base * 2 ** (attempts - 1))
        return base * (0.5 + random.random() / 2)

    def _finish(
        self,
        send: _Send,
        attempts: int,
        status: str,
        message_id: int | None,
        error: str | None,
        dead_letter: DeadLetterReason | None,
    ) -> None:
        final = status in FINAL_STATUSES
        result = _result(send.item, send.row, status, message_id, error, final, attempts)
        outcome = Outcome(status, error, dead_letter, message_id)
        self._results.add((result, send.item.future, outcome))

    async def _write_results(
        self, batch: list[tuple[DeliveryResult, asyncio.Future[Outcome], Outcome]]
    ) -> None:
        delay = 0.1
        while True:
            try:
                await self._store.finish([r for r, _, _ in batch])
                break
            except TRANSIENT_DB_ERRORS as exc:  # the database is down: keep the results, retry
                log.warning("database unavailable, retrying results: %r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._config.db_retry_max)
        for _, future, outcome in batch:
            if not future.done():
                future.set_result(outcome)


def _result(
    item: _Item,
    row: DeliveryRow,
    status: str,
    message_id: int | None,
    error: str | None,
    final: bool,
    attempts: int | None = None,
) -> DeliveryResult:
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
    )


def _chain(source: asyncio.Future[Outcome], target: asyncio.Future[Outcome]) -> None:
    """Resolve `target` (a duplicate in the same batch) as a duplicate once `source` is done."""

    def copy(done: asyncio.Future[Outcome]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        else:
            target.set_result(Outcome("duplicate", "same event twice in one batch"))

    source.add_done_callback(copy)
