"""The notifier's core: from a validated event to a recorded Telegram delivery.

Events arrive one by one (one task per RabbitMQ delivery) and are grouped into small batches so
the database work is one transaction per batch: the activity record, the link lookup, the daily
aggregation and the delivery intent. Each message is then sent in its chat's arrival order under
the rate limiter, retried within bounds, and its result written (again in batches) before the
RabbitMQ message is acknowledged.

Two paths leave the send loop: a message for a user in quiet hours is `held` in the database (the
RabbitMQ message is acknowledged) and sent later by `release_held`, folded with the others that
waited; a `post_metrics_updated` event edits the post's earlier message instead of sending one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from services.common.logging import log_context, mask_chat_id
from services.notifier import digests, metrics
from services.notifier.batching import Batcher
from services.notifier.keyboards import Keyboard, reply_markup
from services.notifier.planning import (
    Lookup,
    activity_row,
    chat_tag,
    dedupe_key,
    link_skip_reason,
    post_key,
    route,
)
from services.notifier.progress import ProgressWatch
from services.notifier.ratelimit import ChatSequencer, RateLimiter
from services.notifier.records import (
    FINAL_STATUSES,
    SETTLED_IN_PLAN,
    DeliveryIntent,
    DeliveryResult,
    DeliveryRow,
    DeliveryStatus,
    EditPlan,
    HeldDelivery,
    Hold,
    Link,
    MetricsUpdate,
    Outcome,
    OutcomeStatus,
    Plan,
    PostMessage,
    Settled,
    SummaryWindow,
    Verdict,
    problem,
)
from services.notifier.render import render_quiet_fold
from services.notifier.retry import MOVED, PACED, Judge, RetryPolicy
from services.notifier.store import NotifierStore
from services.notifier.telegram import Failure, SendError, TelegramSender
from services.notifier.work import Edit as _Edit
from services.notifier.work import Item as _Item
from services.notifier.work import Send as _Send
from shared.contract import (
    ACTIVITY_TYPES,
    DailySummaryData,
    Event,
    PostMetricsUpdatedData,
)
from shared.db import is_transient

log = logging.getLogger("notifier")


Clock = Callable[[], datetime]
"""The current time, timezone-aware (quiet hours are decided on it; tests pass a fixed one)."""


MARK_TIMEOUT = 5.0
"""Seconds a batch of hand-over marks may take before it is given up (and only logged)."""


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


class ChatIdDecoder(Protocol):
    """Turns the stored (possibly encrypted) chat id into Telegram's integer id."""

    def decrypt(self, stored: str) -> int: ...


class InternalEvents(Protocol):
    """Publishes the notifier's `telegram.*` events for the linker."""

    async def chat_gone(self, user_id: str, error: SendError) -> None: ...

    async def chat_migrated(self, user_id: str, new_chat_id: int) -> None: ...


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
    release_interval: float = 5.0
    release_users: int = 100
    digest_min: int = 0
    """Fold this many (or more) messages waiting for one chat into one; 0: never fold."""
    digest_window: float = 5.0
    """Only messages that arrived within this many seconds of the first are folded."""


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
        self._store = store
        self._callback_key = callback_key
        self._clock = clock
        self._sender = sender
        self._limiter = limiter
        self._chat_ids = chat_ids
        self._internal = internal_events
        self._config = config or ProcessorConfig()
        self._sequencer = ChatSequencer()
        self._policy = RetryPolicy(
            max_attempts=self._config.max_attempts,
            max_rate_limited=self._config.max_rate_limited,
            backoff_base=self._config.backoff_base,
            backoff_max=self._config.backoff_max,
        )
        self._prepare = Batcher(
            self._config.batch_size,
            self._config.batch_wait,
            self._prepare_batch,
            on_error=self._batch_failed,
        )
        self._results = Batcher(
            500, self._config.batch_wait, self._write_results, on_error=self._results_failed
        )
        # (delivery id, request written?, holds an exposure slot): written as soon as possible,
        # in order, so a restart knows which `sending` rows Telegram may already have acted on.
        self._marks = Batcher(1000, 0.0, self._write_marks, on_error=self._marks_failed)
        self._sends: set[asyncio.Task[None]] = set()
        self._active: dict[str, asyncio.Future[Outcome]] = {}
        """Dedupe keys being sent or edited by this process, and the event doing it: a copy of
        the event arriving in a later batch waits for it instead of sending again."""
        self._progress = ProgressWatch()
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
        future.add_done_callback(lambda done: self._settled(event, done))
        self._prepare.add(_Item(event, data, future, dedupe_key(event, data)))
        return future

    async def handle(self, event: Event, data: Any) -> Outcome:
        """Process one event; returns once its outcome is durably recorded."""
        return await self.submit(event, data)

    def _settled(self, event: Event, future: asyncio.Future[Outcome]) -> None:
        self.in_flight -= 1
        self.settled += 1
        self._progress.note()
        metrics.IN_FLIGHT.dec()
        if not future.cancelled():
            metrics.EVENTS.labels(event.type.value, future.result().status).inc()

    def stalled_for(self) -> float:
        """Seconds without progress while events wait (0 when none wait); a pause Telegram
        imposed (429 `retry_after`) is not counted. See `services/notifier/progress.py`."""
        return self._progress.stalled_for(self.in_flight, self._limiter.paused_until)

    async def close(self) -> None:
        """Release the processor's own database connection (after `abort` or a drain)."""
        await self._store.close()

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
        await self._prepare_isolated(items)

    async def _prepare_isolated(self, items: list[_Item]) -> None:
        """Plan `items` in one transaction and queue their sends. While the database is
        unreachable the batch waits and is tried again; when it fails for any other reason
        (an event the code or the database cannot take, a bug), it is split in halves, each
        tried on its own, so only the event at fault is dead-lettered and the others go on."""
        try:
            plan = await self._retrying("batch", self._plan, items)
        except Exception as exc:
            if len(items) > 1:
                log.warning(
                    "a batch of %d events failed (%s); trying its halves to find the event at "
                    "fault",
                    len(items),
                    problem(exc),
                )
                middle = len(items) // 2
                await self._prepare_isolated(items[:middle])
                await self._prepare_isolated(items[middle:])
                return
            (item,) = items
            with log_context(event_id=str(item.event.event_id), user_id=item.event.user_id):
                log.error("event could not be processed: %s", problem(exc), exc_info=exc)
            metrics.ISOLATED.inc()
            self._fail(item, exc)
            return
        self._progress.note()
        self._dispatch(*plan)

    async def _retrying(self, what: str, work: Callable[[Any], Awaitable[Any]], arg: Any) -> Any:
        """`await work(arg)`, again and again while the database is unreachable (with backoff);
        any other error is raised at once."""
        delay = 0.1
        while True:
            try:
                return await work(arg)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("database unavailable, retrying %s: %r", what, exc)
            # Waiting on a database outage is not a stall (the readiness check reports it).
            self._progress.note()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._config.db_retry_max)

    def _fail(self, item: _Item, exc: BaseException) -> None:
        """Dead-letter one event with the error that stopped it."""
        if not item.future.done():
            item.future.set_result(Outcome("error", problem(exc), "processing_error"))

    def _batch_failed(self, items: list[_Item], exc: Exception) -> None:
        for item in items:
            self._fail(item, exc)

    async def _plan(
        self, items: list[_Item]
    ) -> tuple[list[_Item], dict[str, DeliveryRow], dict[str, Plan]]:
        """One transaction: read links, record activity, aggregate, create delivery rows."""
        now = self._clock()
        async with self._store.pool.connection() as conn, conn.transaction():
            done = await self._store.processed(conn, [i.event.event_id for i in items])
            fresh = [i for i in items if i.event.event_id not in done]
            links = await self._store.links(conn, (i.event.user_id for i in fresh))
            chats = {
                user: self._chat_ids.decrypt(link.chat_id)
                for user, link in links.items()
                if link.enabled and link.chat_id
            }
            await self._store.record_activity(
                conn,
                (
                    activity_row(i.event, i.data, self._tag(chats.get(i.event.user_id)))
                    for i in fresh
                    if i.event.type in ACTIVITY_TYPES
                ),
            )
            firsts: dict[str, _Item] = {}
            for item in fresh:
                firsts.setdefault(item.dedupe_key, item)
            windows = [
                SummaryWindow(i.dedupe_key, i.event.user_id, i.data.date, i.data.timezone)
                for i in firsts.values()
                if isinstance(i.data, DailySummaryData) and not i.data.has_totals
            ]
            posts, superseded = await self._apply_metrics(conn, firsts)
            lookup = Lookup(
                now=now,
                links=links,
                chats=chats,
                reports=await self._store.daily_reports(conn, windows),
                posts=posts,
                superseded=superseded,
                # A user whose earlier messages still wait keeps their order: new ones join.
                waiting=await self._store.held_users(
                    conn, (u for u, link in links.items() if link.quiet_start and link.quiet_end)
                ),
            )
            plans, holds, held_edits = route(firsts, lookup, self._callback_key)
            updated = await self._store.update_held(
                conn, {e.delivery_id: e.payload for e in held_edits.values()}
            )
            intents = []
            for key, item in firsts.items():
                plan = plans[key]
                status = (
                    DeliveryStatus.SKIPPED if isinstance(plan, Settled) else DeliveryStatus.SENDING
                )
                if key in held_edits and held_edits[key].delivery_id in updated:
                    status = DeliveryStatus.EDITED
                elif key in held_edits:
                    plans[key] = Settled("the post's held message is being released")
                chat_id = chats.get(item.event.user_id)
                intents.append(
                    DeliveryIntent(
                        key,
                        item.event.event_id,
                        item.event.type.value,
                        item.event.user_id,
                        mask_chat_id(chat_id) if status is not DeliveryStatus.SKIPPED else None,
                        status,
                    )
                )
            rows = await self._store.begin_deliveries(conn, intents)
            await self._hold(conn, rows, plans, holds)
            settled = []
            for key, row in rows.items():
                plan = plans[key]
                if isinstance(plan, Settled) and row.status in SETTLED_IN_PLAN:
                    settled.append(_result(firsts[key], row, row.status, None, plan.reason, True))
            await self._store.mark_processed(conn, settled)
        return items, rows, plans

    async def _apply_metrics(
        self, conn: Any, firsts: dict[str, _Item]
    ) -> tuple[dict[str, PostMessage], dict[str, str]]:
        """Store the batch's new post counts (linked or not: the daily report uses them) and
        find each post's message; also the updates a newer one in the batch replaces."""
        latest: dict[tuple[str, str], _Item] = {}
        superseded: dict[str, str] = {}
        for key, item in firsts.items():
            if not isinstance(item.data, PostMetricsUpdatedData):
                continue
            post = (item.event.user_id, post_key(item.data.post_id) or "")
            best = latest.get(post)
            if best is not None and best.event.occurred_at > item.event.occurred_at:
                superseded[key] = "superseded by a newer update"
                continue
            if best is not None:
                superseded[best.dedupe_key] = "superseded by a newer update"
            latest[post] = item
        updates = [
            MetricsUpdate(
                i.dedupe_key, user, post, i.data.likes, i.data.comments, i.event.occurred_at
            )
            for (user, post), i in latest.items()
        ]
        return await self._store.post_messages(conn, updates), superseded

    async def _hold(
        self,
        conn: Any,
        rows: dict[str, DeliveryRow],
        plans: dict[str, Plan],
        holds: dict[str, Hold],
    ) -> None:
        """Keep quiet-hours messages in the database (their rows become `held`)."""
        wanted = {
            k: dataclasses.replace(hold, delivery_id=rows[k].id)
            for k, hold in holds.items()
            if k in rows and rows[k].status is DeliveryStatus.SENDING
        }
        held = await self._store.hold(conn, list(wanted.values()))
        for key, hold in wanted.items():
            if hold.delivery_id in held:
                rows[key] = dataclasses.replace(rows[key], status=DeliveryStatus.HELD)
                plans[key] = Settled(f"quiet hours until {hold.release_at:%Y-%m-%d %H:%M} UTC")
                metrics.HELD.inc()

    def _tag(self, chat_id: int | None) -> str | None:
        return None if chat_id is None else chat_tag(self._callback_key, chat_id)

    def _dispatch(
        self,
        items: list[_Item],
        rows: dict[str, DeliveryRow],
        plans: dict[str, Plan],
    ) -> None:
        """Resolve duplicates and skips; queue sends in arrival order (tickets taken here)."""
        leaders: dict[str, _Item] = {}
        for item in items:
            try:
                self._dispatch_one(item, rows, plans, leaders)
            except Exception as exc:  # a bug: this event is dead-lettered, the others go on
                log.exception("event %s could not be dispatched", item.event.event_id)
                self._fail(item, exc)

    def _dispatch_one(
        self,
        item: _Item,
        rows: dict[str, DeliveryRow],
        plans: dict[str, Plan],
        leaders: dict[str, _Item],
    ) -> None:
        key = item.dedupe_key
        row = rows.get(key)
        plan = plans.get(key)
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
            result = _result(item, row, uncertain, None, reason, True)
            self._results.add((result, item.future, Outcome(uncertain, reason)))
        else:
            if isinstance(plan, EditPlan):
                work = self._edit(_Edit(item, row, plan, self._sequencer.enter(plan.chat_id)))
            else:
                send = _Send(
                    item, row, plan.chat_id, plan.text, buttons=plan.buttons, language=plan.language
                )
                send.ticket = self._sequencer.enter(plan.chat_id, send)
                work = self._send(send)
            self._active[key] = item.future
            item.future.add_done_callback(lambda _: self._active.pop(key, None))
            task = asyncio.create_task(work)
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    # -- sending ------------------------------------------------------------------------------

    async def _send(self, send: _Send) -> None:
        with self._guarded(send, send.chat_id, "sending"):
            await send.ticket
            if send.absorbed:  # an earlier message carried it as part of a digest
                return
            item = send.item
            verdict, attempts = await self._attempt_until_done(
                item.event.user_id,
                send.chat_id,
                send.row.attempts,
                functools.partial(self._send_once, send),
                expose=True,
            )
            if verdict.status is DeliveryStatus.SENT:
                metrics.SENT.labels(item.event.type.value).inc()
                metrics.LAG.observe(max(0.0, time.time() - item.event.occurred_at.timestamp()))
            self._finish(send, attempts, verdict)

    async def _send_once(self, send: _Send, chat_id: int) -> int:
        """One sendMessage of `send` (a digest if waiting let a burst gather), with its rows'
        hand-over marks: set once the request is written, cleared when Telegram answers that it
        did not deliver it (a resend is then ours, or the next consumer's, to make)."""
        if not send.folded:
            self._fold(send)
        rows = [send.row.id, *(f.row.id for f in send.folded)]
        written = False

        def handed() -> None:
            nonlocal written
            written = True
            for index, row_id in enumerate(rows):  # the first holds the limiter's exposure slot
                self._marks.add((row_id, True, index == 0))

        started = time.perf_counter()
        try:
            message_id = await self._sender.send_text(
                chat_id,
                send.text,
                reply_markup=self._markup(send.buttons, chat_id),
                on_written=handed,
            )
        except SendError as error:
            if written and error.failure is not Failure.UNCERTAIN:
                for row_id in rows:
                    self._marks.add((row_id, False, False))
            raise
        finally:
            if not written:  # nothing to mark: give the exposure slot back now
                self._limiter.unexpose()
        metrics.SEND_LATENCY.observe(time.perf_counter() - started)
        return message_id

    @contextlib.contextmanager
    def _guarded(self, entry: _Send | _Edit, chat_id: int, doing: str) -> Iterator[None]:
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
                self._finish(entry, entry.row.attempts, verdict)
            finally:
                self._sequencer.leave(chat_id, entry.ticket)

    async def _attempt_until_done(
        self,
        user_id: str,
        chat_id: int,
        attempts: int,
        call: Callable[[int], Awaitable[int]],
        *,
        expose: bool = False,
        judge: Judge | None = None,
    ) -> tuple[Verdict, int]:
        """`call(chat_id)` under the rate limiter until it succeeds or `judge` (by default the
        policy's `after_send_failure`) stops it: a 429 pauses every send and is retried without
        counting as an attempt, a migrated group is retried at its new id, a transient failure
        after a backoff. Returns the verdict (`sent` with the message id on success) and the
        attempts made."""
        judge = judge or self._policy.after_send_failure
        rate_limited = 0
        while True:
            metrics.RATE_WAIT.observe(await self._limiter.acquire(chat_id, expose=expose))
            attempts += 1
            try:
                message_id = await call(chat_id)
            except SendError as error:
                self._limiter.release(chat_id)
                self._progress.note()  # Telegram answered (or the request timed out)
                metrics.TELEGRAM_ERRORS.labels(error.failure.value).inc()
                await self._heed(user_id, error)
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
                self._limiter.release(chat_id)
                raise
            self._limiter.release(chat_id)
            self._progress.note()
            return Verdict(DeliveryStatus.SENT, message_id), attempts

    def _fold(self, send: _Send) -> None:
        """Turn `send` into a digest of the messages queued behind it for its chat, when
        enough of them wait (`digests`)."""
        minimum = self._config.digest_min
        if minimum < 2 or self._sequencer.waiting(send.chat_id) < minimum:
            return
        behind = self._sequencer.behind(send.chat_id, send.ticket)
        taken = digests.foldable(send, behind, minimum, self._config.digest_window)
        if taken:
            digests.fold(send, taken)
            metrics.DIGESTS.inc()

    async def _heed(self, user_id: str, error: SendError) -> None:
        """What Telegram's answer means beyond this message: a 429 pauses every send; a chat
        gone or moved is the linker's to know."""
        failure = error.failure
        if failure is Failure.RETRY_AFTER:
            self._limiter.pause(error.retry_after or 1.0)
            metrics.RETRIES.labels("retry_after").inc()
        elif failure is Failure.MIGRATED and error.migrate_to_chat_id:
            await self._internal.chat_migrated(user_id, error.migrate_to_chat_id)
        elif failure is Failure.CHAT_GONE:
            log.info("chat refused by Telegram, disabling the link: %s", error)
            await self._internal.chat_gone(user_id, error)

    def _markup(self, buttons: Keyboard | None, chat_id: int) -> dict[str, Any] | None:
        """The buttons signed for the chat they are sent to (after a migration: the new one)."""
        return reply_markup(buttons, self._callback_key, chat_id)

    # -- editing ------------------------------------------------------------------------------

    async def _edit(self, edit: _Edit) -> None:
        """Edit a post's message in its chat's turn, under the same limits as sends."""
        plan = edit.plan
        with self._guarded(edit, plan.chat_id, "editing"):
            await edit.ticket

            async def once(chat_id: int) -> int:
                markup = self._markup(plan.buttons, chat_id)
                await self._sender.edit_text(chat_id, plan.message_id, plan.text, markup)
                return plan.message_id

            verdict, attempts = await self._attempt_until_done(
                edit.item.event.user_id,
                plan.chat_id,
                edit.row.attempts,
                once,
                judge=self._policy.after_edit_failure,
            )
            if verdict.status is DeliveryStatus.SENT:
                metrics.EDITED.inc()
                verdict = Verdict(DeliveryStatus.EDITED, plan.message_id)
            self._finish(edit, attempts, verdict)

    # -- quiet hours: releasing held deliveries -----------------------------------------------

    async def release_loop(self, stopping: asyncio.Event) -> None:
        """Release due held deliveries every `release_interval` seconds until `stopping`."""
        while not stopping.is_set():
            full = False
            try:
                full = await self.release_held() >= self._config.release_users
            except Exception as exc:  # the rows stay held and are tried again next round
                if is_transient(exc):
                    log.warning("database unavailable, held deliveries wait: %r", exc)
                else:
                    log.exception("releasing held deliveries failed")
            if not full:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._config.release_interval):
                        await stopping.wait()

    async def release_held(self) -> int:
        """Send every held delivery whose quiet hours are over, one message per user (a fold
        when several wait); returns the number of users released.

        The rows stay locked (`FOR UPDATE SKIP LOCKED`) until their results are written, so two
        replicas never release the same one; a crash before that sends them again.
        """
        async with self._store.pool.connection() as conn, conn.transaction():
            due = await self._store.due_held(conn, self._clock(), self._config.release_users)
            if not due:
                return 0
            links = await self._store.links(conn, {d.user_id for d in due})
            by_user: dict[str, list[HeldDelivery]] = {}
            for delivery in due:
                by_user.setdefault(delivery.user_id, []).append(delivery)
            released = await asyncio.gather(
                *(self._release(rows, links.get(user)) for user, rows in by_user.items())
            )
            await self._store.write_results(conn, [r for results, _ in released for r in results])
            await self._store.mark_folded(conn, [folded for _, folded in released])
        return len(by_user)

    async def _release(
        self, rows: list[HeldDelivery], link: Link | None
    ) -> tuple[list[DeliveryResult], list[int]]:
        """Send one user's held deliveries as one message; their results and, for a fold, the
        ids that went out together."""
        results = []
        ready = []
        for row in rows:  # the user may have muted, disabled or unlinked since
            reason = link_skip_reason(link, row.event_type)
            if reason is None:
                ready.append(row)
            else:
                results.append(
                    _held_result(row, DeliveryStatus.SKIPPED, None, reason, row.attempts)
                )
        if not ready or link is None or link.chat_id is None:
            return results, []
        user_id = ready[0].user_id
        with log_context(user_id=user_id):
            try:
                chat_id = self._chat_ids.decrypt(link.chat_id)
                if len(ready) == 1:
                    text, buttons = ready[0].payload["text"], ready[0].payload.get("buttons")
                else:  # one message, no buttons: they would not say which notification they act on
                    text = render_quiet_fold([r.payload["text"] for r in ready], link.language)
                    buttons = None
                attempts = max(r.attempts for r in ready)
                status, message_id, error, attempts = await self._deliver(
                    user_id, chat_id, text, buttons, attempts
                )
            except Exception as exc:  # a bug or bad data: record it on the rows, release others
                log.exception("releasing held deliveries failed")
                status, message_id, error = DeliveryStatus.FAILED, None, problem(exc)
            results += [_held_result(r, status, message_id, error, attempts) for r in ready]
        metrics.RELEASED.labels(status).inc(len(ready))
        folded = [r.id for r in ready] if len(ready) > 1 and status is DeliveryStatus.SENT else []
        return results, folded

    async def _deliver(
        self, user_id: str, chat_id: int, text: str, buttons: Keyboard | None, attempts: int
    ) -> tuple[DeliveryStatus, int | None, str | None, int]:
        """Send one released message in its chat's turn: (status, message id, error, attempts).

        Nothing is dead-lettered: a held message has no RabbitMQ message left.
        """
        ticket = self._sequencer.enter(chat_id)
        try:
            await ticket

            async def once(to: int) -> int:
                return await self._sender.send_text(
                    to, text, reply_markup=self._markup(buttons, to)
                )

            verdict, attempts = await self._attempt_until_done(user_id, chat_id, attempts, once)
            if verdict.status is DeliveryStatus.SENT:
                metrics.SENT.labels("quiet_hours").inc()
            return verdict.status, verdict.message_id, verdict.error, attempts
        finally:
            self._sequencer.leave(chat_id, ticket)

    def _finish(self, send: _Send | _Edit, attempts: int, verdict: Verdict) -> None:
        status, message_id, error = verdict.status, verdict.message_id, verdict.error
        final = status in FINAL_STATUSES
        outcome = Outcome(status, error, verdict.dead_letter, message_id)
        carried = send.folded if isinstance(send, _Send) else []
        for each in (send, *carried):  # a digest's messages share its fate
            result = _result(each.item, each.row, status, message_id, error, final, attempts)
            self._results.add((result, each.item.future, outcome))

    async def _write_marks(self, marks: list[tuple[int, bool, bool]]) -> None:
        try:
            async with asyncio.timeout(MARK_TIMEOUT):
                await self._store.mark_handed([(row_id, handed) for row_id, handed, _ in marks])
        except Exception as exc:  # without marks a restart only resends: never lose the work
            log.warning("could not record %d hand-over marks: %r", len(marks), exc)
        finally:
            for _, _, exposed in marks:
                if exposed:
                    self._limiter.unexpose()

    async def _write_results(
        self, batch: list[tuple[DeliveryResult, asyncio.Future[Outcome], Outcome]]
    ) -> None:
        # While the database is down the results wait (the RabbitMQ messages stay unacked);
        # `finish` itself keeps one unwritable row from losing the others.
        await self._retrying("results", self._store.finish, [r for r, _, _ in batch])
        self._results_failed(batch, None)

    @staticmethod
    def _results_failed(
        batch: list[tuple[DeliveryResult, asyncio.Future[Outcome], Outcome]],
        error: Exception | None,
    ) -> None:
        """Settle each event with its outcome (the send is over, whether or not its result
        could be recorded: holding the message back would only send it again)."""
        for _result, future, outcome in batch:
            if not future.done():
                future.set_result(outcome)

    def _marks_failed(self, marks: list[tuple[int, bool, bool]], error: Exception) -> None:
        for _row, _handed, exposed in marks:
            if exposed:
                self._limiter.unexpose()


def _result(
    item: _Item,
    row: DeliveryRow,
    status: DeliveryStatus,
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


def _held_result(
    row: HeldDelivery,
    status: DeliveryStatus,
    message_id: int | None,
    error: str | None,
    attempts: int,
) -> DeliveryResult:
    return DeliveryResult(
        delivery_id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        user_id=row.user_id,
        status=status,
        telegram_message_id=message_id,
        error=error,
        attempts=attempts,
        final=status in FINAL_STATUSES,
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
