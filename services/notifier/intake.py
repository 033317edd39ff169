"""Intake: submitted events grouped into batches, each planned in one short transaction (activity
recorded, links read, daily reports aggregated, post counts applied, each delivery's intent
recorded) and handed to delivery.

While the database is unreachable a batch waits and is tried again; when it fails for any other
reason (an event the code or the database cannot take, a bug) it is split in halves, each tried
on its own, so only the event at fault is dead-lettered and the others go on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.common import tracing
from services.common.logging import log_context, mask_chat_id
from services.notifier import metrics
from services.notifier.batching import Batcher, retry_while_unreachable
from services.notifier.config import ProcessorConfig
from services.notifier.edits import apply_metrics
from services.notifier.planning import Lookup, activity_row, chat_tag, route
from services.notifier.progress import ProgressWatch
from services.notifier.records import (
    PREVIEW_CHARS,
    SETTLED_IN_PLAN,
    DeliveryIntent,
    DeliveryStatus,
    Hold,
    Outcome,
    Settled,
    SummaryWindow,
    problem,
)
from services.notifier.results import result_of
from services.notifier.store import NotifierStore
from services.notifier.work import Item, Planned
from shared.contract import ACTIVITY_TYPES, DailySummaryData

log = logging.getLogger("notifier")

Clock = Callable[[], datetime]
"""The current time, timezone-aware (quiet hours are decided on it; tests pass a fixed one)."""

Dispatch = Callable[[Planned], None]
"""Takes a planned batch on."""


class ChatIdDecoder(Protocol):
    """Turns the stored (possibly encrypted) chat id into Telegram's integer id."""

    def decrypt(self, stored: str) -> int: ...


@dataclass(eq=False)
class Intake:
    """Batches submitted events and plans each batch in one transaction."""

    store: NotifierStore
    chat_ids: ChatIdDecoder
    clock: Clock
    callback_key: bytes
    progress: ProgressWatch
    dispatch: Dispatch
    config: ProcessorConfig
    _batcher: Batcher = field(init=False)

    def __post_init__(self) -> None:
        self._batcher = Batcher(
            self.config.batch_size, self.config.batch_wait, self._prepare_batch, self._batch_failed
        )

    def add(self, item: Item) -> None:
        """Queue one event (synchronously, keeping arrival order)."""
        self._batcher.add(item)

    def cancel(self) -> None:
        """Drop the batch being planned and the queued events (their owners see cancellation)."""
        self._batcher.cancel()

    async def _prepare_batch(self, items: list[Item]) -> None:
        metrics.BATCH_SIZE.observe(len(items))
        # A trace of its own, linked to each event's (OpenTelemetry's messaging conventions for
        # batch processing); each event's render and delivery stay in the event's trace.
        with tracing.span(
            "notifier.events batch",
            root=True,
            links=tracing.link_to([item.trace for item in items]),
            attributes={"messaging.batch.message_count": len(items)},
        ):
            await self._prepare_isolated(items)

    async def _prepare_isolated(self, items: list[Item]) -> None:
        """Plan `items` in one transaction and dispatch them; on an error that is not the
        database being unreachable, bisect until the event at fault is alone, and dead-letter
        it."""
        try:
            planned = await retry_while_unreachable(
                "batch",
                self._plan,
                items,
                cap=self.config.db_retry_max,
                waiting=self.progress.note,
            )
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
            _fail(item, exc)
            return
        self.progress.note()
        self.dispatch(planned)

    def _batch_failed(self, items: list[Item], exc: Exception) -> None:
        for item in items:
            _fail(item, exc)

    async def _plan(self, items: list[Item]) -> Planned:
        """One transaction: read links, record activity, aggregate, create delivery rows."""
        store = self.store
        now = self.clock()
        async with store.pool.connection() as conn, conn.transaction():
            done = await store.processed(conn, [i.event.event_id for i in items])
            fresh = [i for i in items if i.event.event_id not in done]
            links = await store.links(conn, (i.event.user_id for i in fresh))
            chats = {
                user: self.chat_ids.decrypt(link.chat_id)
                for user, link in links.items()
                if link.enabled and link.chat_id
            }
            await store.record_activity(
                conn,
                (
                    activity_row(i.event, i.data, self._tag(chats.get(i.event.user_id)))
                    for i in fresh
                    if i.event.type in ACTIVITY_TYPES
                ),
            )
            firsts: dict[str, Item] = {}
            for item in fresh:
                firsts.setdefault(item.dedupe_key, item)
            windows = [
                SummaryWindow(i.dedupe_key, i.event.user_id, i.data.date, i.data.timezone)
                for i in firsts.values()
                if isinstance(i.data, DailySummaryData) and not i.data.has_totals
            ]
            posts, superseded = await apply_metrics(store, conn, firsts)
            lookup = Lookup(
                now=now,
                links=links,
                chats=chats,
                reports=await store.daily_reports(conn, windows),
                posts=posts,
                superseded=superseded,
                # A user whose earlier messages still wait keeps their order: new ones join.
                waiting=await store.held_users(
                    conn, (u for u, link in links.items() if link.quiet_start and link.quiet_end)
                ),
            )
            plans, holds, held_edits = route(firsts, lookup, self.callback_key)
            updated = await store.update_held(
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
                plan = plans[key]
                intents.append(
                    DeliveryIntent(
                        key,
                        item.event.event_id,
                        item.event.type.value,
                        item.event.user_id,
                        mask_chat_id(chat_id) if status is not DeliveryStatus.SKIPPED else None,
                        status,
                        item.event.occurred_at,
                        None if isinstance(plan, Settled) else plan.text[:PREVIEW_CHARS],
                        plan.reason if isinstance(plan, Settled) else None,
                    )
                )
            batch = Planned(items, await store.begin_deliveries(conn, intents), plans)
            await self._hold(conn, batch, holds)
            settled = []
            for key, row in batch.rows.items():
                plan = plans[key]
                if isinstance(plan, Settled) and row.status in SETTLED_IN_PLAN:
                    settled.append(result_of(firsts[key], row, row.status, None, plan.reason, True))
            await store.mark_processed(conn, settled)
        return batch

    async def _hold(self, conn: Any, batch: Planned, holds: dict[str, Hold]) -> None:
        """Keep quiet-hours messages in the database (their rows become `held`)."""
        rows, plans = batch.rows, batch.plans
        wanted = {
            k: dataclasses.replace(hold, delivery_id=rows[k].id)
            for k, hold in holds.items()
            if k in rows and rows[k].status is DeliveryStatus.SENDING
        }
        held = await self.store.hold(conn, list(wanted.values()))
        for key, hold in wanted.items():
            if hold.delivery_id in held:
                rows[key] = dataclasses.replace(rows[key], status=DeliveryStatus.HELD)
                plans[key] = Settled(f"quiet hours until {hold.release_at:%Y-%m-%d %H:%M} UTC")
                metrics.HELD.inc()

    def _tag(self, chat_id: int | None) -> str | None:
        return None if chat_id is None else chat_tag(self.callback_key, chat_id)


def _fail(item: Item, exc: BaseException) -> None:
    """Dead-letter one event with the error that stopped it."""
    if not item.future.done():
        item.future.set_result(Outcome("error", problem(exc), "processing_error"))
