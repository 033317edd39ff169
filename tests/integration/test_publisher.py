"""The shared publisher against real RabbitMQ: confirmed, persistent, typed; unroutable raises."""

import aio_pika
import pytest

from shared.contract import EventType, new_event, parse_event
from shared.publisher import EventPublisher, PublishError
from tests.support.bus import bound_queue

pytestmark = pytest.mark.integration


async def test_published_event_is_consumed_back_intact(rabbitmq_url):
    connection = await aio_pika.connect_robust(rabbitmq_url)
    async with connection, EventPublisher(rabbitmq_url) as publisher:
        channel = await connection.channel()
        queue = await bound_queue(channel, EventType.POST_SUCCESS.value, name="publisher-test")

        sent = await publisher.send(
            "post_success", 123, {"platform": "instagram", "likes": 1234, "comments": 56}
        )

        message = await queue.get(timeout=10)
        await message.ack()
        event, data = parse_event(message.body)
        assert event == sent
        assert data.likes == 1234
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type == "application/json"
        assert message.message_id == str(sent.event_id)
        assert message.routing_key == "post_success"


async def test_unroutable_event_raises(rabbitmq_url):
    async with EventPublisher(rabbitmq_url) as publisher:
        with pytest.raises(PublishError, match="not routed"):
            await publisher.send("post_failure", "u1", {"platform": "x", "error": "e"})


async def test_publish_many_confirms_every_event(rabbitmq_url):
    connection = await aio_pika.connect_robust(rabbitmq_url)
    async with connection, EventPublisher(rabbitmq_url) as publisher:
        channel = await connection.channel()
        queue = await bound_queue(channel, "daily_summary", name="many")
        events = [
            new_event("daily_summary", f"user-{i}", {"date": "2026-02-26"}) for i in range(300)
        ]
        await publisher.publish_many(events)
        received = set()
        while (message := await queue.get(fail=False, timeout=5)) is not None:
            received.add(message.message_id)
            await message.ack()
        assert received == {str(e.event_id) for e in events}


async def test_publish_without_connect_is_an_error(rabbitmq_url):
    publisher = EventPublisher(rabbitmq_url)
    with pytest.raises(PublishError, match="not connected"):
        await publisher.send("post_failure", "u1", {"platform": "x", "error": "e"})
