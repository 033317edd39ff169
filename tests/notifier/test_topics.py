"""Forum topics, end to end through the stand-in with real aiogram: a link with a
`message_thread_id` has every send, digest and quiet-hours release carry it (edits need none); a
topic closed or deleted makes the message go to General once, the group is told, the delivery row
says why and the linker is told to clear the link's topic (`telegram.topic_closed`)."""

import pytest

from tests.notifier.harness import running_notifier
from tests.notifier.test_delivery_options import FAILURE, QUIET, SUCCESS, at_night
from tests.notifier.test_delivery_options import held_until_morning as held_then_released
from tests.support.ids import new_chat_id, new_user
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

TOPIC = 42
NOTICE = {
    "ko": "ℹ️ 알림을 보내던 토픽이 닫혔거나 삭제되어, 이제부터 일반(General)으로 보냅니다.",
    "en": "ℹ️ The topic notifications went to was closed or deleted; "
    "they go to General from now on.",
}


def threads(h, chat):
    """The topic each bot message of `chat` went to (None: General, the chat itself)."""
    return [m["message_thread_id"] for m in h.standin.messages(chat, "bot")]


def forum():
    """A supergroup's chat id, and a new user."""
    return new_user(), -(10**12) - new_chat_id()


async def test_sends_and_edits_in_the_links_topic_and_without_one_in_the_chat(
    database_url, rabbitmq_url
):
    async with running_notifier(database_url, rabbitmq_url) as h:
        (user, chat), (plain, plain_chat) = forum(), forum()
        await h.link(user, chat, chat_type="supergroup", message_thread_id=TOPIC)
        await h.link(plain, plain_chat, chat_type="supergroup")
        success = await h.publish("post_success", user, SUCCESS)
        other = await h.publish("post_failure", plain, FAILURE)
        await h.wait_delivery(success, "sent")
        await h.wait_delivery(other, "sent")
        update = await h.publish(
            "post_metrics_updated", user, {"post_id": "post-1", "likes": 7, "comments": 1}
        )
        await h.wait_delivery(update, "edited")  # found by its id: no thread needed
        assert threads(h, chat) == [TOPIC]
        assert h.standin.messages(chat, "bot")[0]["edited"]
        assert threads(h, plain_chat) == [None]
        assert "message_thread_id" not in h.standin.messages(plain_chat, "bot")[0]["options"]


async def test_a_digest_goes_to_the_topic(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url, notifier_digest_min=3) as h:
        user, chat = forum()
        await h.link(user, chat, chat_type="supergroup", message_thread_id=TOPIC)
        burst = [
            await h.publish("post_failure", user, FAILURE | {"error": f"#{n}"}) for n in range(6)
        ]
        for event in burst:
            await h.wait_delivery(event, "sent")
        texts = h.texts(chat)
        assert len(texts) <= 2 and texts[-1].startswith("📬")  # what waited went as a digest
        assert threads(h, chat) == [TOPIC] * len(texts)


async def test_a_quiet_hours_release_goes_to_the_topic(database_url, rabbitmq_url):
    clock, night = at_night(database_url, rabbitmq_url)
    async with night as h:
        user, chat = forum()
        await h.link(user, chat, chat_type="supergroup", message_thread_id=TOPIC, **QUIET)
        held = [await h.publish("post_failure", user, FAILURE) for _ in range(2)]
        await held_then_released(h, clock, held)
        assert threads(h, chat) == [TOPIC]


@pytest.mark.parametrize(("state", "language"), [("closed", "ko"), ("deleted", "en")])
async def test_a_gone_topic_falls_back_to_general_once_tells_the_group_and_records_why(
    database_url, rabbitmq_url, state, language
):
    async with running_notifier(database_url, rabbitmq_url) as h:
        told = await h.observe_internal("telegram.topic_closed")
        user, chat = forum()
        await h.link(user, chat, chat_type="supergroup", message_thread_id=TOPIC, language=language)
        h.standin.set_topic(chat, TOPIC, state)
        event = await h.publish("post_failure", user, FAILURE)
        row = await h.wait_delivery(event, "sent")
        assert f"topic {TOPIC} gone" in row["error"] and "General" in row["error"]
        notice_text, _ = h.texts(chat)
        assert notice_text == NOTICE[language]
        assert threads(h, chat) == [None, None]  # the notice, then the notification, in General
        (notice,) = await eventually(told)
        assert notice["user_id"] == user
        assert notice["data"]["message_thread_id"] == TOPIC
        assert notice["data"]["error_code"] == 400


async def test_a_gone_topic_in_a_release_falls_back_too(database_url, rabbitmq_url):
    clock, night = at_night(database_url, rabbitmq_url)
    async with night as h:
        told = await h.observe_internal("telegram.topic_closed")
        user, chat = forum()
        await h.link(user, chat, chat_type="supergroup", message_thread_id=TOPIC, **QUIET)
        h.standin.set_topic(chat, TOPIC, "closed")
        held = [await h.publish("post_failure", user, FAILURE)]
        await held_then_released(h, clock, held)
        assert threads(h, chat) == [None, None]
        assert (await eventually(told))[0]["data"]["message_thread_id"] == TOPIC
