"""The consumer of the notifier's telegram.blocked and telegram.chat_migrated (real RabbitMQ)."""

from datetime import UTC, datetime, timedelta

import aio_pika
import pytest

from shared.contract import EXCHANGE, EventType, new_event
from shared.publisher import EventPublisher
from tests.linker.helpers import new_chat_id, new_user, wait_until

pytestmark = pytest.mark.integration


async def publish(rabbitmq_url, event_type, user_id, data, occurred_at=None):
    async with EventPublisher(rabbitmq_url) as publisher:
        await publisher.publish(new_event(event_type, user_id, data, occurred_at=occurred_at))


async def test_blocked_pauses_the_link(linker):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    await publish(
        linker.rabbitmq_url,
        EventType.TELEGRAM_BLOCKED,
        user,
        {"reason": "Forbidden: bot was blocked by the user", "error_code": 403},
    )

    async def paused() -> bool:
        return (await linker.status(user))["telegram_enabled"] is False

    await wait_until(paused)
    assert (await linker.status(user))["telegram_chat_id"] == str(chat)


async def test_a_stale_event_does_not_touch_a_newer_link(linker):
    user, chat, new_chat = new_user(), new_chat_id(), -(10**12) - new_chat_id()
    await linker.link(user, chat)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await publish(
        linker.rabbitmq_url,
        EventType.TELEGRAM_BLOCKED,
        user,
        {"reason": "old", "error_code": 403},
        occurred_at=an_hour_ago,
    )
    # Events are handled in order: once the later one is applied, the stale one was seen.
    await publish(
        linker.rabbitmq_url, EventType.TELEGRAM_CHAT_MIGRATED, user, {"new_chat_id": new_chat}
    )

    async def migrated() -> bool:
        return (await linker.status(user))["telegram_chat_id"] == str(new_chat)

    await wait_until(migrated)
    assert (await linker.status(user))["telegram_enabled"] is True


async def test_an_invalid_event_goes_to_the_dead_letter_queue(linker):
    connection = await aio_pika.connect_robust(linker.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EXCHANGE)
        await exchange.publish(
            aio_pika.Message(b'{"not": "an event"}', content_type="application/json"),
            routing_key=EventType.TELEGRAM_BLOCKED.value,
        )
        dlq = await channel.get_queue("linker.events.dlq")

        async def dead_lettered() -> bool:
            message = await dlq.get(fail=False)
            if message is None:
                return False
            await message.ack()
            assert message.body == b'{"not": "an event"}'
            return True

        await wait_until(dead_lettered)


async def test_the_queue_is_quorum_with_a_delivery_limit(linker):
    connection = await aio_pika.connect_robust(linker.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        # Declaring with other arguments would fail with PRECONDITION_FAILED.
        await channel.declare_queue(
            "linker.events",
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": 5,
                "x-dead-letter-exchange": "sns.events.dlx",
                "x-dead-letter-routing-key": "linker.events.dlq",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
