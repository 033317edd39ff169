"""Delivery: each planned event sent (or edited) in its chat's arrival order under the rate
limiter, tried until the retry policy gives its verdict, the result recorded.

A copy of an event already finished, or being sent right now by this process (`_active`), or
handed to Telegram by a consumer that stopped before the answer, is not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from services.common import tracing
from services.common.logging import log_context, mask_chat_id
from services.notifier import digests, edits, metrics
from services.notifier.config import ProcessorConfig
from services.notifier.fallbacks import Fallback
from services.notifier.keyboards import Keyboard, reply_markup
from services.notifier.notes import Notes
from services.notifier.ordering import ChatSequencer
from services.notifier.progress import ProgressWatch
from services.notifier.ratelimit import RateLimiter
from services.notifier.records import (
    FINAL_STATUSES,
    SETTLED_IN_PLAN,
    DeliveryStatus,
    EditPlan,
    FailedAttempt,
    Outcome,
    OutcomeStatus,
    Settled,
    Verdict,
    problem,
)
from services.notifier.results import Results, result_of
from services.notifier.retry import MOVED, PACED, Judge
from services.notifier.telegram import Failure, SendError, TelegramSender
from services.notifier.work import Edit, Item, Planned, Send

log = logging.getLogger("notifier")


class InternalEvents(Protocol):
    """Publishes the notifier's `telegram.*` events for the linker."""

    async def chat_gone(self, user_id: str, error: SendError) -> None: ...

    async def chat_migrated(self, user_id: str, new_chat_id: int) -> None: ...

    async def topic_closed(self, user_id: str, thread: int, error: SendError) -> None: ...


@dataclass(eq=False)
class Delivery:
    """Sends and edits, one chat's in arrival order; every attempt under the rate limiter."""

    sender: TelegramSender
    limiter: RateLimiter
    internal_events: InternalEvents
    results: Results
    progress: ProgressWatch
    callback_key: bytes
    config: ProcessorConfig
    notes: Notes | None = None
    """Where refused attempts are noted for the delivery log (None: not noted)."""
    sequencer: ChatSequencer = field(init=False, default_factory=ChatSequencer)
    """Each chat's line: sends, edits and released messages leave in arrival order."""
    _sends: set[asyncio.Task[None]] = field(init=False, default_factory=set)
    _active: dict[str, asyncio.Future[Outcome]] = field(init=False, default_factory=dict)
    """Dedupe keys being sent or edited by this process, and the event doing it: a copy of
    the event arriving in a later batch waits for it instead of sending again."""

    def __post_init__(self) -> None:
        limits = self.limiter.limits
        metrics.describe_limits(
            limits.global_per_second, limits.per_chat_per_second, limits.per_group_per_minute
        )
        metrics.declare_failures(failure.value for failure in Failure)

    def cancel(self) -> None:
        """Stop every send and edit under way (their events see cancellation)."""
        for task in list(self._sends):
            task.cancel()

    # -- dispatch ---------------------------------------------------------------------------

    def dispatch(self, batch: Planned) -> None:
        """Resolve duplicates and skips; queue sends in arrival order (tickets taken here)."""
        leaders: dict[str, Item] = {}
        for item in batch.items:
            try:
                self._dispatch_one(item, batch, leaders)
            except Exception as exc:  # a bug: this event is dead-lettered, the others go on
                log.exception("event %s could not be dispatched", item.event.event_id)
                if not item.future.done():
                    item.future.set_result(Outcome("error", problem(exc), "processing_error"))

    def _dispatch_one(self, item: Item, batch: Planned, leaders: dict[str, Item]) -> None:
        key = item.dedupe_key
        row = batch.rows.get(key)
        plan = batch.plans.get(key)
        leader = leaders.setdefault(key, item)
        if row is None or plan is None:
            item.future.set_result(Outcome("duplicate", "already processed"))
        elif leader is not item:
            _chain(leader.future, item.future)
        elif isinstance(plan, Settled):
            status: OutcomeStatus = row.status if row.status in SETTLED_IN_PLAN else "duplicate"
            item.future.set_result(Outcome(status, plan.reason))
        elif row.status in FINAL_STATUSES:
            item.future.set_result(Outcome("duplicate", f"already {row.status}"))
        elif key in self._active:  # an earlier copy of this event is being sent right now
            _chain(self._active[key], item.future)
        elif row.handed_at is not None:
            # The previous consumer wrote the request and stopped before the answer was
            # recorded: Telegram has most likely delivered it, and sendMessage has no
            # idempotency key, so it is not sent again (as with a timeout after sending).
            reason = "in flight when the previous consumer stopped; not resent"
            uncertain = DeliveryStatus.UNCERTAIN
            result = result_of(item, row, uncertain, None, reason, True)
            self.results.record(result, item.future, Outcome(uncertain, reason))
        else:
            work: Coroutine[Any, Any, None]
            if isinstance(plan, EditPlan):
                ticket = self.sequencer.enter(plan.chat_id)
                work = edits.edit(self, Edit(item, row, plan, ticket))
            else:
                send = Send(item, row, plan.chat_id, plan.text, buttons=plan.buttons)
                send.language, send.options = plan.language, plan.options
                send.ticket = self.sequencer.enter(plan.chat_id, send)
                work = self._send(send)
            self._active[key] = item.future
            item.future.add_done_callback(lambda _: self._active.pop(key, None))
            with tracing.attached(item.trace):  # the send is part of the event's trace
                task = asyncio.create_task(work)
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    # -- sending ----------------------------------------------------------------------------

    async def _send(self, send: Send) -> None:
        with self.guarded(send, send.chat_id, "sending"):
            await send.ticket
            if send.absorbed:  # an earlier message carried it as part of a digest
                return
            item = send.item
            with tracing.span(
                "deliver", attributes={"sns.event.id": str(item.event.event_id)}
            ) as span:
                verdict, attempts = await self.attempt(
                    item.event.user_id,
                    send.chat_id,
                    send.row.attempts,
                    functools.partial(self._send_once, send),
                    expose=True,
                    noted=(send.row.id, item.event.event_id),
                    fallback=Fallback(send, send.language),
                )
                if span is not None:
                    span.set_attributes(
                        {"sns.delivery.status": verdict.status.value, "sns.attempts": attempts}
                    )
            if verdict.status is DeliveryStatus.SENT:
                metrics.SENT.labels(item.event.type.value).inc()
                metrics.LAG.observe(max(0.0, time.time() - item.event.occurred_at.timestamp()))
            self.results.finish(send, attempts, verdict)

    async def _send_once(self, send: Send, chat_id: int) -> int:
        """One sendMessage of `send` (a digest if waiting let a burst gather), with its rows'
        hand-over marks: set once the request is written, cleared when Telegram answers that it
        did not deliver it (a resend is then ours, or the next consumer's, to make)."""
        if not send.folded:
            self._fold(send)
        rows = [send.row.id, *(f.row.id for f in send.folded)]
        written = False
        mark = self.results.mark

        def handed() -> None:
            nonlocal written
            written = True
            for index, row_id in enumerate(rows):  # the first holds the limiter's exposure slot
                mark(row_id, True, index == 0)

        started = time.perf_counter()
        try:
            message_id = await self.sender.send_text(
                chat_id,
                send.text,
                reply_markup=self.markup(send.buttons, chat_id),
                on_written=handed,
                options=send.options,
            )
        except SendError as error:
            if written and error.failure is not Failure.UNCERTAIN:
                for row_id in rows:
                    mark(row_id, False, False)
            raise
        finally:
            if not written:  # nothing to mark: give the exposure slot back now
                self.limiter.unexpose()
        metrics.SEND_LATENCY.observe(time.perf_counter() - started)
        return message_id

    def _fold(self, send: Send) -> None:
        """Turn `send` into a digest of the messages queued behind it for its chat, when
        enough of them wait (`digests`)."""
        minimum = self.config.digest_min
        if minimum < 2 or self.sequencer.waiting(send.chat_id) < minimum:
            return
        behind = self.sequencer.behind(send.chat_id, send.ticket)
        taken = digests.foldable(send, behind, minimum, self.config.digest_window)
        if taken:
            digests.fold(send, taken)
            metrics.DIGESTS.inc()

    def markup(self, buttons: Keyboard | None, chat_id: int) -> dict[str, Any] | None:
        """The buttons signed for the chat they are sent to (after a migration: the new one)."""
        return reply_markup(buttons, self.callback_key, chat_id)

    @contextlib.contextmanager
    def guarded(self, entry: Send | Edit, chat_id: int, doing: str) -> Iterator[None]:
        """Around one send or edit: its log context; cancellation leaves its RabbitMQ message
        unacknowledged; an unexpected error dead-letters it, never the others; its place in the
        chat's line is always given up."""
        item = entry.item
        with log_context(event_id=str(item.event.event_id), user_id=item.event.user_id):
            try:
                yield
            except asyncio.CancelledError:
                if not item.future.done():
                    item.future.cancel()
                raise
            except Exception as exc:  # a bug, or the broker gone mid-way: dead-letter, go on
                log.exception("%s failed unexpectedly", doing)
                verdict = Verdict(DeliveryStatus.FAILED, None, problem(exc), "processing_error")
                self.results.finish(entry, entry.row.attempts, verdict)
            finally:
                self.sequencer.leave(chat_id, entry.ticket)

    # -- attempts ---------------------------------------------------------------------------

    async def attempt(
        self,
        user_id: str,
        chat_id: int,
        attempts: int,
        call: Callable[[int], Awaitable[int]],
        *,
        expose: bool = False,
        edit: bool = False,
        judge: Judge | None = None,
        noted: tuple[int, uuid.UUID] | None = None,
        fallback: Fallback | None = None,
    ) -> tuple[Verdict, int]:
        """`call(chat_id)` under the rate limiter (an edit's budget: `edit`) until it succeeds
        or `judge` (by default the policy's `after_send_failure`) stops it: a 429 pauses its
        chat (`RateLimiter.too_many`) and is retried without counting as an attempt, a
        migrated group is retried at its new id, a transient failure
        after a backoff. Returns the verdict (`sent` with the message id on success) and the
        attempts made. Each refused attempt is noted for the delivery log under `noted` (the
        delivery's row id and event id). A message into a forum topic that is gone goes to
        General once, a photo Telegram refuses goes as text once (`fallback`)."""
        judge = judge or self.config.retry.after_send_failure
        rate_limited = 0
        while True:
            waited = await self.limiter.acquire(chat_id, expose=expose, edit=edit)
            metrics.RATE_WAIT.observe(waited)
            attempts += 1
            try:
                message_id = await call(chat_id)
            except SendError as error:
                self.limiter.release(chat_id, edit)
                self.progress.note()  # Telegram answered (or the request timed out)
                metrics.TELEGRAM_ERRORS.labels(error.failure.value).inc()
                if noted is not None and self.notes is not None:
                    self.notes.attempt_failed(refused(noted, attempts, error))
                await self._heed(user_id, chat_id, error, edit)
                if fallback is not None and fallback.to_general(error):
                    await self._topic_gone(user_id, chat_id, fallback, error)
                    continue
                if fallback is not None and fallback.to_text(error):
                    log.info("photo refused, sending the notification as text: %s", error)
                    metrics.PHOTO_FALLBACKS.inc()
                    continue
                decision = judge(error, attempts, rate_limited)
                if isinstance(decision, Verdict):
                    if decision.status is DeliveryStatus.UNCERTAIN:
                        log.warning(
                            "send timed out after the request was sent; not retried: %s", error
                        )
                    return decision, attempts
                if decision is PACED:
                    rate_limited += 1
                    attempts -= 1  # a 429 is Telegram pacing us, not a failed attempt
                    continue
                metrics.RETRIES.labels(decision.reason).inc()
                if decision is MOVED and error.migrate_to_chat_id:
                    chat_id = error.migrate_to_chat_id
                    log.info(
                        "chat migrated to a supergroup, resending to %s", mask_chat_id(chat_id)
                    )
                if decision.wait > 0:
                    await asyncio.sleep(decision.wait)
                continue
            except BaseException:
                self.limiter.release(chat_id, edit)
                raise
            self.limiter.release(chat_id, edit)
            self.progress.note()
            sent = Verdict(DeliveryStatus.SENT, message_id)
            return (fallback.recorded(sent) if fallback is not None else sent), attempts

    async def _topic_gone(
        self, user_id: str, chat_id: int, topic: Fallback, error: SendError
    ) -> None:
        """The link's topic is gone: the linker clears it, and the group is told (in General,
        best effort: the notification itself follows whatever the notice meets)."""
        log.info("forum topic gone, sending to General: %s", error)
        assert topic.thread is not None  # set by `to_general`
        await self.internal_events.topic_closed(user_id, topic.thread, error)
        await self.limiter.acquire(chat_id)
        try:
            await self.sender.send_text(chat_id, topic.notice())
        except SendError as failed:
            log.info("telling the group its topic is gone failed: %s", failed)
        finally:
            self.limiter.release(chat_id, False)

    async def _heed(self, user_id: str, chat_id: int, error: SendError, edit: bool) -> None:
        """What Telegram's answer means beyond this message: a 429 pauses its chat (and may
        lower the rate); a chat gone or moved is the linker's to know."""
        failure = error.failure
        if failure is Failure.RETRY_AFTER:
            self.limiter.too_many(chat_id, error.retry_after or 1.0, edit)
            metrics.RATE_ADAPTED.set(self.limiter.rate.rate)
            metrics.RETRIES.labels("retry_after").inc()
            metrics.RETRY_AFTER.observe(error.retry_after or 1.0)
        elif failure is Failure.MIGRATED and error.migrate_to_chat_id:
            await self.internal_events.chat_migrated(user_id, error.migrate_to_chat_id)
        elif failure is Failure.CHAT_GONE:
            log.info("chat refused by Telegram, disabling the link: %s", error)
            await self.internal_events.chat_gone(user_id, error)


def refused(noted: tuple[int, uuid.UUID], attempt: int, error: SendError) -> FailedAttempt:
    """What the delivery log keeps of an attempt Telegram refused."""
    return FailedAttempt(
        noted[0],
        noted[1],
        attempt,
        datetime.now(UTC),
        error.failure.value,
        error.error_code,
        error.description,
        error.retry_after,
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
