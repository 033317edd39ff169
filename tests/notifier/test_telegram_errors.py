"""Each Telegram error class, injected by the stand-in, handled as docs/architecture.md ("Telegram facts") says."""

import time

import pytest

from shared.contract import DLQ_ERROR_HEADER, DLQ_REASON_HEADER
from tests.notifier.harness import running_notifier
from tests.support.ids import new_chat_id, new_user
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

FAILURE = {"platform": "instagram", "error": "Connection timeout"}


async def test_429_pauses_every_send_for_retry_after_then_delivers(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        h.standin.add_fault(error_code=429, retry_after=2, chat_id=chat)
        started = time.monotonic()
        event = await h.publish("post_failure", user, FAILURE)
        row = await h.wait_delivery(event, "sent")
        assert time.monotonic() - started >= 2
        assert row["attempts"] == 1  # a 429 is pacing, not a failed attempt
        assert len(h.texts(chat)) == 1
        assert h.standin.stats["early_retries"] == 0


async def test_5xx_answers_are_retried_with_backoff_then_delivered(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        h.standin.add_fault(error_code=502, description="Bad Gateway", count=2, chat_id=chat)
        event = await h.publish("post_failure", user, FAILURE)
        row = await h.wait_delivery(event, "sent")
        assert row["attempts"] == 3
        assert len(h.texts(chat)) == 1


async def test_a_send_that_times_out_after_being_sent_is_not_retried(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url, telegram_timeout_seconds=1) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        h.standin.add_fault(delay=3, deliver=True, chat_id=chat)
        event = await h.publish("post_failure", user, FAILURE)
        row = await h.wait_delivery(event, "uncertain")
        assert row["attempts"] == 1
        await eventually(lambda: len(h.texts(chat)) == 1)  # Telegram had it: exactly one


@pytest.mark.parametrize(
    ("state", "code"), [("blocked", 403), ("deactivated", 403), ("not_found", 400)]
)
async def test_a_chat_telegram_refuses_disables_the_link_via_the_linker(
    database_url, rabbitmq_url, state, code
):
    async with running_notifier(database_url, rabbitmq_url) as h:
        blocked = await h.observe_internal("telegram.blocked")
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        h.standin.set_chat_state(chat, state)
        event = await h.publish("post_failure", user, FAILURE)
        row = await h.wait_delivery(event, "undeliverable")
        assert row["attempts"] == 1
        (notice,) = await eventually(blocked)
        assert notice["user_id"] == user
        assert notice["data"]["error_code"] == code
        assert h.texts(chat) == []


async def test_a_group_upgraded_to_a_supergroup_gets_the_message_at_its_new_id(
    database_url, rabbitmq_url
):
    async with running_notifier(database_url, rabbitmq_url) as h:
        migrated = await h.observe_internal("telegram.chat_migrated")
        user, old_chat, new_chat = new_user(), -new_chat_id(), -1000000000000 - new_chat_id()
        await h.link(user, old_chat)
        h.standin.set_chat_state(old_chat, "ok", migrate_to=new_chat)
        event = await h.publish("post_failure", user, FAILURE)
        await h.wait_delivery(event, "sent")
        assert len(h.texts(new_chat)) == 1
        (notice,) = await eventually(migrated)
        assert notice["user_id"] == user and notice["data"]["new_chat_id"] == new_chat


async def test_retries_exhausted_goes_to_the_dlq_with_the_reason(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url, notifier_max_attempts=2) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        h.standin.add_fault(
            error_code=500, description="Internal Server Error", count=10, chat_id=chat
        )
        event = await h.publish("post_failure", user, FAILURE)
        (dead,) = await h.dead_letters(1)
        assert dead.message_id == str(event.event_id)
        assert dead.headers[DLQ_REASON_HEADER] == "retries_exhausted"
        assert "500" in dead.headers[DLQ_ERROR_HEADER]
        assert (await h.delivery(event))["status"] == "failed"


async def test_a_message_telegram_rejects_goes_to_the_dlq_and_others_still_flow(
    database_url, rabbitmq_url
):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat, other, other_chat = new_user(), new_chat_id(), new_user(), new_chat_id()
        await h.link(user, chat)
        await h.link(other, other_chat)
        h.standin.add_fault(
            error_code=400, description="Bad Request: message is too long", chat_id=chat
        )
        rejected = await h.publish("post_failure", user, FAILURE)
        fine = await h.publish("post_failure", other, FAILURE)
        await h.wait_delivery(fine, "sent")
        (dead,) = await h.dead_letters(1)
        assert dead.message_id == str(rejected.event_id)
        assert dead.headers[DLQ_REASON_HEADER] == "undeliverable"
        assert "message is too long" in dead.headers[DLQ_ERROR_HEADER]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"type": "post_success"}', "event_id: Field required"),
        (
            b'{"event_id": "7b0c2f0e-2c7e-4a53-9a55-3f1d6c0f9a10", "type": "post_deleted", '
            b'"user_id": "1", "occurred_at": "2026-02-26T10:30:00Z", "data": {}}',
            "type: Input should be",
        ),
        (
            b'{"event_id": "7b0c2f0e-2c7e-4a53-9a55-3f1d6c0f9a10", "type": "post_success", '
            b'"user_id": "1", "occurred_at": "2026-02-26T10:30:00Z", "data": {"platform": "x", "likes": "many"}}',
            "data.likes",
        ),
    ],
)
async def test_malformed_messages_go_to_the_dlq_at_once_with_the_validation_error(
    database_url, rabbitmq_url, body, expected
):
    import aio_pika

    async with running_notifier(database_url, rabbitmq_url) as h:
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange("sns.events")
            await exchange.publish(
                aio_pika.Message(body, message_id="bad-1"), routing_key="post_success"
            )
        (dead,) = await h.dead_letters(1)
        assert dead.body == body
        assert dead.headers[DLQ_REASON_HEADER] == "invalid"
        assert expected in dead.headers[DLQ_ERROR_HEADER]
        assert dead.headers["x-original-routing-key"] == "post_success"
        # ...and the notifier keeps working.
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        await h.publish("post_failure", user, FAILURE)
        await h.wait_texts(chat, 1)
