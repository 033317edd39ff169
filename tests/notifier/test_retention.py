"""Idempotency and retention: a redelivered event inside the retention window is not sent twice;
one replayed after its idempotency keys were pruned is treated as new (documented behaviour:
docs/operations.md, "Data retention")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from services.scheduler.retention import prune
from services.scheduler.retention_settings import RetentionSettings
from tests.notifier.harness import Harness, running_notifier
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
FAILURE = {"platform": "twitter", "error": "boom"}


KEYS = text(
    "SELECT (SELECT count(*) FROM processed_events WHERE event_id = :id),"
    " (SELECT count(*) FROM deliveries WHERE event_id = :id)"
)


async def keys(h: Harness, event_id: object) -> tuple[int, int]:
    """(processed_events rows, deliveries rows) of the event: its idempotency keys."""
    async with h.engine.connect() as conn:
        processed, delivered = (await conn.execute(KEYS, {"id": event_id})).one()
    return int(processed), int(delivered)


async def republish_then_marker(h: Harness, user: str, event: object) -> None:
    """The same event again (a redelivery or replay), then a marker; wait for the marker."""
    await h.publisher.publish(event)  # type: ignore[arg-type]
    marker = await h.publish("post_failure", user, {"platform": "x", "error": "marker"})
    await h.wait_delivery(marker, "sent")


async def test_a_redelivered_event_inside_the_window_is_not_sent_twice(
    fresh_database_url, rabbitmq_url
):
    settings = RetentionSettings(_env_file=None)  # 14 days of keys, 30 of deliveries
    async with running_notifier(fresh_database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        event = await h.publish("post_failure", user, FAILURE)
        await h.wait_delivery(event, "sent")
        now = datetime.now(UTC)

        await prune(h.engine, settings, now + 13 * DAY)
        assert await keys(h, event.event_id) == (1, 1)
        await republish_then_marker(h, user, event)

        # Past the inbox's window but inside the delivery log's: the sent delivery still says so.
        await prune(h.engine, settings, now + 15 * DAY)
        assert await keys(h, event.event_id) == (0, 1)
        await republish_then_marker(h, user, event)

        # The event once, then only the two markers.
        assert ["boom" in t for t in h.texts(chat)] == [True, False, False]


async def test_a_replayed_event_older_than_the_window_is_sent_again(
    fresh_database_url, rabbitmq_url
):
    settings = RetentionSettings(_env_file=None)
    async with running_notifier(fresh_database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        event = await h.publish("post_failure", user, FAILURE)
        await h.wait_delivery(event, "sent")

        report = await prune(h.engine, settings, datetime.now(UTC) + 31 * DAY)
        assert await keys(h, event.event_id) == (0, 0)
        assert report.by_table()["activity"] >= 1
        await h.publisher.publish(event)

        # Nothing remembers it: it is a new event, recorded and sent again.
        await h.wait_delivery(event, "sent")  # its result and inbox row: one transaction
        assert await keys(h, event.event_id) == (1, 1)
        texts = h.texts(chat)
        assert len(texts) == 2 and all("boom" in t for t in texts)
