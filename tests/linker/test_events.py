"""The consumer of the notifier's telegram.blocked and telegram.chat_migrated (real RabbitMQ)."""

from datetime import UTC, datetime, timedelta

import aio_pika
import pytest

from services.common.internal_events import SIGNATURE_HEADER, internal_events_key, signature
from shared.contract import INTERNAL_EXCHANGE, LINKER_DLQ, EventType, new_event
from shared.publisher import EventPublisher
from tests.linker.helpers import BOT_TOKEN
from tests.linker.helpers import publish_internal as publish
from tests.linker.test_groups import link_group
from tests.support.bus import take
from tests.support.ids import new_chat_id, new_user
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


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

    await eventually(paused)
    assert (await linker.status(user))["telegram_chat_id"] == str(chat)


async def test_a_stale_event_does_not_touch_a_newer_link(linker):
    user, group, new_chat = new_user(), -new_chat_id(), -(10**12) - new_chat_id()
    await link_group(linker, user, group)
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

    await eventually(migrated)
    assert (await linker.status(user))["telegram_enabled"] is True


async def test_an_invalid_event_goes_to_the_dead_letter_queue(linker):
    connection = await aio_pika.connect_robust(linker.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(INTERNAL_EXCHANGE)
        body = b'{"not": "an event"}'
        key = internal_events_key(BOT_TOKEN)
        await exchange.publish(
            aio_pika.Message(body, headers={SIGNATURE_HEADER: signature(key, body)}),
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

        await eventually(dead_lettered)


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


async def dead_letters(rabbitmq_url: str, count: int) -> list[bytes]:
    """Wait for `count` messages in the linker's DLQ and take them."""
    return [message.body for message in await take(rabbitmq_url, LINKER_DLQ, count)]


async def test_outsiders_cannot_pause_or_move_a_link(linker):
    """The finding: anyone who could publish to sns.events paused or redirected any user's
    notifications. Now the public exchange does not reach the linker at all, and on the internal
    one an event needs our services' signature."""
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    blocked = new_event(EventType.TELEGRAM_BLOCKED, user, {"reason": "x", "error_code": 403})
    # 1. On the platform's exchange, as `sns-telegram publish` or any team could.
    async with EventPublisher(linker.rabbitmq_url) as public:
        await public.publish(blocked, mandatory=False)
    connection = await aio_pika.connect_robust(linker.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        internal = await channel.get_exchange(INTERNAL_EXCHANGE)
        # 2. On the internal exchange, unsigned; 3. signed with another bot's key.
        await internal.publish(
            aio_pika.Message(blocked.to_json()), routing_key=EventType.TELEGRAM_BLOCKED.value
        )
        forged = signature(internal_events_key("666:someone-else"), blocked.to_json())
        await internal.publish(
            aio_pika.Message(blocked.to_json(), headers={SIGNATURE_HEADER: forged}),
            routing_key=EventType.TELEGRAM_BLOCKED.value,
        )
    assert await dead_letters(linker.rabbitmq_url, 2) == [blocked.to_json()] * 2
    assert (await linker.status(user))["telegram_enabled"] is True
    # The same event, signed by our services, is applied.
    await publish(
        linker.rabbitmq_url, EventType.TELEGRAM_BLOCKED, user, {"reason": "x", "error_code": 403}
    )

    async def paused() -> bool:
        return (await linker.status(user))["telegram_enabled"] is False

    await eventually(paused)


async def test_only_a_group_link_migrates_and_only_to_a_supergroup(linker):
    private_user, private_chat = new_user(), new_chat_id()
    await linker.link(private_user, private_chat)
    group_user, group = new_user(), -new_chat_id()
    await link_group(linker, group_user, group)
    supergroup = -(10**12) - new_chat_id()
    # A private chat never becomes a supergroup: the event changes nothing.
    await publish(
        linker.rabbitmq_url,
        EventType.TELEGRAM_CHAT_MIGRATED,
        private_user,
        {"new_chat_id": supergroup},
    )
    # A basic group's link moves only to a supergroup's id: -5 is refused (dead-lettered).
    raw = new_event(
        EventType.TELEGRAM_CHAT_MIGRATED, group_user, {"new_chat_id": supergroup}
    ).model_copy(update={"data": {"new_chat_id": -5}})
    key = internal_events_key(BOT_TOKEN)
    connection = await aio_pika.connect_robust(linker.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        internal = await channel.get_exchange(INTERNAL_EXCHANGE)
        await internal.publish(
            aio_pika.Message(
                raw.to_json(), headers={SIGNATURE_HEADER: signature(key, raw.to_json())}
            ),
            routing_key=EventType.TELEGRAM_CHAT_MIGRATED.value,
        )
    assert await dead_letters(linker.rabbitmq_url, 1) == [raw.to_json()]
    await publish(
        linker.rabbitmq_url,
        EventType.TELEGRAM_CHAT_MIGRATED,
        group_user,
        {"new_chat_id": supergroup},
    )

    async def moved() -> bool:
        return (await linker.status(group_user))["telegram_chat_id"] == str(supergroup)

    await eventually(moved)  # handled in order: the private user's event was seen before
    assert (await linker.status(private_user))["telegram_chat_id"] == str(private_chat)
