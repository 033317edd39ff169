"""Quiet hours: releasing the held deliveries whose time has come, one message per user (a fold of
everything that waited, or a lone message as it was), through the same chat lines, limits and
retries as any send. (Intake holds them: `planning.route` decides, `Intake._hold` records.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace

from services.common.logging import log_context
from services.notifier import metrics
from services.notifier.config import ProcessorConfig
from services.notifier.delivery import Delivery
from services.notifier.digests import fold_options
from services.notifier.fallbacks import Fallback, Held
from services.notifier.intake import ChatIdDecoder, Clock
from services.notifier.keyboards import Keyboard
from services.notifier.planning import link_skip_reason
from services.notifier.records import (
    FINAL_STATUSES,
    DeliveryResult,
    DeliveryStatus,
    HeldDelivery,
    Link,
    Verdict,
    problem,
)
from services.notifier.render import render_quiet_fold
from services.notifier.store import NotifierStore
from services.notifier.telegram import Options
from shared.db import is_transient

log = logging.getLogger("notifier")


@dataclass(eq=False)
class Release:
    """Sends held deliveries once the users' quiet hours are over."""

    store: NotifierStore
    chat_ids: ChatIdDecoder
    clock: Clock
    delivery: Delivery
    config: ProcessorConfig

    async def loop(self, stopping: asyncio.Event) -> None:
        """Release due held deliveries every `interval` seconds until `stopping` (at once
        again while a round was full)."""
        while not stopping.is_set():
            full = False
            try:
                full = await self.release() >= self.config.release_users
            except Exception as exc:  # the rows stay held and are tried again next round
                if is_transient(exc):
                    log.warning("database unavailable, held deliveries wait: %r", exc)
                else:
                    log.exception("releasing held deliveries failed")
            if not full:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.release_interval):
                        await stopping.wait()

    async def release(self) -> int:
        """Send every held delivery whose quiet hours are over, one message per user (a fold
        when several wait); returns the number of users released.

        The rows stay locked (`FOR UPDATE SKIP LOCKED`) until their results are written, so two
        replicas never release the same one; a crash before that sends them again.
        """
        async with self.store.pool.connection() as conn, conn.transaction():
            now = self.clock()
            waiting, oldest = await self.store.held_waiting(conn)
            metrics.HELD_WAITING.set(waiting)
            metrics.HELD_OVERDUE.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
            due = await self.store.due_held(conn, now, self.config.release_users)
            if not due:
                return 0
            links = await self.store.links(conn, {d.user_id for d in due})
            by_user: dict[str, list[HeldDelivery]] = {}
            for delivery in due:
                by_user.setdefault(delivery.user_id, []).append(delivery)
            released = await asyncio.gather(
                *(self._release(rows, links.get(user)) for user, rows in by_user.items())
            )
            await self.store.write_results(conn, [r for results, _ in released for r in results])
            await self.store.mark_folded(conn, [folded for _, folded in released])
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
                skipped = Verdict(DeliveryStatus.SKIPPED, None, reason)
                results.append(_held_result(row, skipped, row.attempts))
        if not ready or link is None or link.chat_id is None:
            return results, []
        user_id = ready[0].user_id
        attempts = max(r.attempts for r in ready)
        with log_context(user_id=user_id):
            try:
                chat_id = self.chat_ids.decrypt(link.chat_id)
                kept = [Options.of_payload(r.payload) for r in ready]
                if len(ready) == 1:
                    text, buttons = ready[0].payload["text"], ready[0].payload.get("buttons")
                    options = kept[0]
                else:  # one message, no buttons: they would not say which notification they act on
                    text = render_quiet_fold([r.payload["text"] for r in ready], link.language)
                    buttons, options = None, fold_options(kept)
                options = replace(options, thread=link.message_thread_id)  # its topic of now
                verdict, attempts = await self._deliver(
                    user_id, chat_id, text, buttons, attempts, options, link.language
                )
            except Exception as exc:  # a bug or bad data: record it on the rows, release others
                log.exception("releasing held deliveries failed")
                verdict = Verdict(DeliveryStatus.FAILED, None, problem(exc))
            results += [_held_result(r, verdict, attempts) for r in ready]
        status = verdict.status
        metrics.RELEASED.labels(status).inc(len(ready))
        folded = [r.id for r in ready] if len(ready) > 1 and status is DeliveryStatus.SENT else []
        return results, folded

    async def _deliver(
        self,
        user_id: str,
        chat_id: int,
        text: str,
        buttons: Keyboard | None,
        attempts: int,
        options: Options,
        language: str,
    ) -> tuple[Verdict, int]:
        """Send one released message in its chat's turn: its verdict and the attempts made.

        Nothing is dead-lettered: a held message has no RabbitMQ message left.
        """
        delivery = self.delivery
        ticket = delivery.sequencer.enter(chat_id)
        try:
            await ticket

            async def once(to: int) -> int:
                return await delivery.sender.send_text(
                    to, text, reply_markup=delivery.markup(buttons, to), options=held.options
                )

            held = Held(options)
            verdict, attempts = await delivery.attempt(
                user_id, chat_id, attempts, once, fallback=Fallback(held, language)
            )
            if verdict.status is DeliveryStatus.SENT:
                metrics.SENT.labels("quiet_hours").inc()
            return verdict, attempts
        finally:
            delivery.sequencer.leave(chat_id, ticket)


def _held_result(row: HeldDelivery, verdict: Verdict, attempts: int) -> DeliveryResult:
    return DeliveryResult(
        delivery_id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        user_id=row.user_id,
        status=verdict.status,
        telegram_message_id=verdict.message_id,
        error=verdict.error,
        attempts=attempts,
        final=verdict.status in FINAL_STATUSES,
        kept=verdict.kept,
    )
