"""Seeing what our services publish: a queue of the test's own bound to routing keys on one of
our topic exchanges (`sns.events` unless told), as a consumer of the platform would bind one;
taking what arrives in a queue (a dead-letter queue, say); publishing bytes as a misbehaving
platform service might."""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from shared.contract import EXCHANGE
from tests.support.waiting import eventually


async def bound_queue(
    channel: AbstractChannel,
    *routing_keys: str,
    exchange: str = EXCHANGE,
    name: str | None = None,
) -> AbstractQueue:
    """A queue bound to `routing_keys` on `exchange` (declared as our services declare it, should
    the test come first): durable and called `name`, or without a name one exclusive to this
    connection."""
    topic = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    if name is None:
        queue = await channel.declare_queue(f"observe-{uuid.uuid4().hex[:8]}", exclusive=True)
    else:
        queue = await channel.declare_queue(name, durable=True)
    for key in routing_keys:
        await queue.bind(topic, routing_key=key)
    return queue


async def take(
    rabbitmq_url: str, queue_name: str, count: int, timeout: float = 15.0
) -> list[AbstractIncomingMessage]:
    """Wait (with a deadline) until `count` messages have come out of the queue, each acked."""
    taken: list[AbstractIncomingMessage] = []
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)

        async def enough() -> bool:
            message = await queue.get(fail=False)
            if message is not None:
                await message.ack()
                taken.append(message)
            return len(taken) >= count

        await eventually(enough, timeout, 0.05, f"{count} messages in {queue_name}")
    return taken


async def publish_raw(
    rabbitmq_url: str, routing_key: str, body: bytes, *, message_id: str, **properties: Any
) -> None:
    """Publish bytes to sns.events as a misbehaving platform service might (with confirms)."""
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE)
        await exchange.publish(
            aio_pika.Message(
                body,
                message_id=message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                **properties,
            ),
            routing_key=routing_key,
            timeout=30,
        )
