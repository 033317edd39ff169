"""The point of a replay: a message dead-lettered by a real notifier reaches Telegram once fixed."""

import pytest

from services.ops.dlq import browse, replay
from services.ops.letters import Selection
from shared.contract import NOTIFIER_DLQ
from tests.notifier.harness import running_notifier
from tests.ops.helpers import queue_size, wait_size
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration


async def test_a_replayed_dead_letter_is_delivered_after_the_fault_is_fixed(
    database_url, rabbitmq_url
):
    async with running_notifier(database_url, rabbitmq_url, notifier_max_attempts=2) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        h.standin.add_fault(error_code=502, description="Bad Gateway", count=10, chat_id=chat)
        event = await h.publish("post_failure", user, {"platform": "instagram", "error": "boom"})
        await wait_size(rabbitmq_url, NOTIFIER_DLQ, 1)
        [letter] = (await browse(rabbitmq_url, NOTIFIER_DLQ)).letters
        assert letter.event_id == str(event.event_id)
        assert letter.reason == "retries_exhausted"
        assert h.texts(chat) == []

        h.standin.clear_faults()  # the fix: Telegram answers again
        result = await replay(rabbitmq_url, NOTIFIER_DLQ, Selection(reason="retries_exhausted"))

        assert [r.event_id for r in result.replayed] == [str(event.event_id)]
        [text] = await h.wait_texts(chat, 1)
        assert "instagram" in text.lower()
        await h.wait_delivery(event, "sent")
        assert await queue_size(rabbitmq_url, NOTIFIER_DLQ) == 0
