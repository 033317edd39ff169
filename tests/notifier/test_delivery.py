"""The notifier end to end in-process: real RabbitMQ, PostgreSQL, aiogram and the stand-in."""

import pytest

from tests.notifier.harness import running_notifier
from tests.support.examples import POST_SUCCESS as SUCCESS
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration


async def test_post_success_reaches_the_linked_chat_in_the_spec_format(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        event = await h.publish("post_success", user, SUCCESS)
        texts = await h.wait_texts(chat, 1)
        assert texts == [
            "✅ SNS 게시 완료\n\n📸 Instagram\n📝 Post content here...\n"
            "🔗 https://instagram.com/p/abc\n👥 좋아요: 1,234 | 댓글: 56\n"
            f"⏰ {event.occurred_at:%Y-%m-%d %H:%M:%S} UTC"
        ]
        row = await h.wait_delivery(event, "sent")
        assert row["telegram_message_id"] == h.standin.messages(chat, "bot")[0]["message_id"]
        assert row["attempts"] == 1


async def test_unlinked_disabled_and_muted_users_get_nothing_but_activity_is_recorded(
    database_url, rabbitmq_url
):
    from sqlalchemy import text

    async with running_notifier(database_url, rabbitmq_url) as h:
        nobody, disabled, muted = new_user(), new_user(), new_user()
        disabled_chat, muted_chat = new_chat_id(), new_chat_id()
        await h.link(disabled, disabled_chat, enabled=False)
        await h.link(muted, muted_chat, muted_types=["post_success"])
        events = [
            await h.publish("post_success", nobody, SUCCESS),
            await h.publish("post_success", disabled, SUCCESS),
            await h.publish("post_success", muted, SUCCESS),
        ]
        for event in events:
            row = await h.wait_delivery(event, "skipped")
            assert row["telegram_message_id"] is None
        assert h.texts(disabled_chat) == [] and h.texts(muted_chat) == []
        async with h.engine.connect() as conn:
            recorded = (
                await conn.execute(
                    text("SELECT count(*) FROM activity WHERE event_id = ANY(:ids)"),
                    {"ids": [e.event_id for e in events]},
                )
            ).scalar()
        assert recorded == 3


async def test_a_republished_or_redelivered_event_is_sent_once(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        event = await h.publish("post_failure", user, {"platform": "twitter", "error": "boom"})
        await h.wait_delivery(event, "sent")
        # The same event id again, later (a platform retry) and twice at once (same batch).
        await h.publisher.publish(event)
        await h.publisher.publish(event)
        await h.publisher.publish(event)
        marker = await h.publish("post_failure", user, {"platform": "x", "error": "marker"})
        await h.wait_delivery(marker, "sent")
        texts = h.texts(chat)
        assert len(texts) == 2
        assert "boom" in texts[0] and "marker" in texts[1]


async def test_messages_to_one_chat_keep_their_publish_order(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url, telegram_rate_per_chat=1000) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        for i in range(40):
            await h.publish("post_failure", user, {"platform": "x", "error": f"error #{i}"})
        texts = await h.wait_texts(chat, 40)
        assert [t.split("⚠️ 오류: ")[1].split("\n")[0] for t in texts] == [
            f"error #{i}" for i in range(40)
        ]


async def test_user_content_is_escaped_and_shown_verbatim(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        nasty = '<b>bold</b> & <script>alert("x")</script> &amp; \x00 tab\there'
        await h.publish("post_success", user, {"platform": "instagram", "content": nasty})
        (text,) = await h.wait_texts(chat, 1)
        assert '📝 <b>bold</b> & <script>alert("x")</script> &amp;  tab\there' in text
