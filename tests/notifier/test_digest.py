"""Digest under bursts: many messages waiting for one chat go out as one message listing them
(NOTIFIER_DIGEST_MIN), end to end through the stand-in with Telegram's per-chat limit on."""

import pytest

from services.notifier.render import FOLD_SEPARATOR, render_digest
from tests.notifier.harness import running_notifier
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration


def failure(i: int) -> dict[str, str]:
    return {"platform": "instagram", "error": f"burst #{i}"}


async def test_a_burst_to_one_chat_is_folded_into_a_digest(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url, notifier_digest_min=3) as h:
        user, chat = new_user(), new_chat_id()
        other_user, other_chat = new_user(), new_chat_id()
        await h.link(user, chat)
        await h.link(other_user, other_chat)
        burst = [await h.publish("post_failure", user, failure(i)) for i in range(8)]
        alone = await h.publish("post_failure", other_user, failure(99))
        rows = [await h.wait_delivery(e, "sent") for e in burst]
        await h.wait_delivery(alone, "sent")

        messages = h.standin.messages(chat, "bot")
        # The first may go out before the rest arrive; whatever waited behind the per-chat limit
        # is folded, so far fewer messages than events, none lost, in publication order.
        assert len(messages) <= 2
        shown = [m["text"] for m in messages]
        order = [i for i in range(8) for t in shown if f"burst #{i}" in t]
        assert order == list(range(8))
        digest = messages[-1]["text"]
        assert digest.startswith("📬 새 알림 ")
        assert not messages[-1].get("reply_markup")  # buttons belong to single notifications
        # Every folded event is recorded as sent with the digest's message id.
        ids = {r["telegram_message_id"] for r in rows}
        assert ids == {m["message_id"] for m in messages}
        # Another chat's message is never folded in.
        (single,) = h.standin.messages(other_chat, "bot")
        assert "burst #99" in single["text"] and not single["text"].startswith("📬")


async def test_without_the_setting_every_event_is_its_own_message(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url, telegram_rate_per_chat=20) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        burst = [await h.publish("post_failure", user, failure(i)) for i in range(4)]
        for event in burst:
            await h.wait_delivery(event, "sent")
        texts = h.texts(chat)
        assert len(texts) == 4 and not any(t.startswith("📬") for t in texts)


@pytest.mark.unit
def test_the_digest_lists_each_text_under_a_header_in_either_language():
    assert render_digest(["a", "b", "c"]) == FOLD_SEPARATOR.join(["📬 새 알림 3건", "a", "b", "c"])
    assert render_digest(["a", "b"], "en").startswith("📬 2 new notifications")
