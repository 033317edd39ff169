"""Live metrics: a `post_metrics_updated` event's counts stored in its batch's transaction (the
newest per post wins), then the post's message edited in place in its chat's turn, under the same
limits and retries as sends (`planning.edit_plan` decides whether there is anything to edit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from services.notifier import metrics
from services.notifier.planning import post_key
from services.notifier.records import DeliveryStatus, MetricsUpdate, PostMessage, Verdict
from services.notifier.store import NotifierStore
from services.notifier.work import Edit, Item
from shared.contract import PostMetricsUpdatedData

if TYPE_CHECKING:
    from services.notifier.delivery import Delivery

SUPERSEDED = "superseded by a newer update"


def newest_updates(firsts: Mapping[str, Item]) -> tuple[list[MetricsUpdate], dict[str, str]]:
    """The newest update of each (user, post) among a batch's events (by dedupe key), and the
    older ones it replaces (their keys, with the reason they are skipped)."""
    latest: dict[tuple[str, str], Item] = {}
    superseded: dict[str, str] = {}
    for key, item in firsts.items():
        if not isinstance(item.data, PostMetricsUpdatedData):
            continue
        post = (item.event.user_id, post_key(item.data.post_id) or "")
        best = latest.get(post)
        if best is not None and best.event.occurred_at > item.event.occurred_at:
            superseded[key] = SUPERSEDED
            continue
        if best is not None:
            superseded[best.dedupe_key] = SUPERSEDED
        latest[post] = item
    updates = [
        MetricsUpdate(i.dedupe_key, user, post, i.data.likes, i.data.comments, i.event.occurred_at)
        for (user, post), i in latest.items()
    ]
    return updates, superseded


async def apply_metrics(
    store: NotifierStore, conn: Any, firsts: Mapping[str, Item]
) -> tuple[dict[str, PostMessage], dict[str, str]]:
    """Store the batch's new post counts (linked or not: the daily report uses them) and find
    each post's message; also the updates a newer one in the batch replaces."""
    updates, superseded = newest_updates(firsts)
    return await store.post_messages(conn, updates), superseded


async def edit(delivery: Delivery, work: Edit) -> None:
    """Edit a post's message in its chat's turn, under the same limits as sends."""
    plan = work.plan
    with delivery.guarded(work, plan.chat_id, "editing"):
        await work.ticket

        async def once(chat_id: int) -> int:
            markup = delivery.markup(plan.buttons, chat_id)
            await delivery.sender.edit_text(
                chat_id, plan.message_id, plan.text, markup, plan.options
            )
            return plan.message_id

        verdict, attempts = await delivery.attempt(
            work.item.event.user_id,
            plan.chat_id,
            work.row.attempts,
            once,
            edit=True,
            judge=delivery.config.retry.after_edit_failure,
            noted=(work.row.id, work.item.event.event_id),
        )
        if verdict.status is DeliveryStatus.SENT:
            metrics.EDITED.inc()
            verdict = Verdict(DeliveryStatus.EDITED, plan.message_id)
        delivery.results.finish(work, attempts, verdict)
