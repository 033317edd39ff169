"""The notifier's RabbitMQ topology: the quorum queue, its bindings and the dead-letter queue."""

from __future__ import annotations

from typing import Any

from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

from shared.contract import DLX_EXCHANGE, EXCHANGE, NOTIFICATION_TYPES, NOTIFIER_DLQ, NOTIFIER_QUEUE

EVENTS_EXCHANGE = RabbitExchange(EXCHANGE, type=ExchangeType.TOPIC, durable=True)
DEAD_LETTER_EXCHANGE = RabbitExchange(DLX_EXCHANGE, type=ExchangeType.TOPIC, durable=True)


def notifier_queue(delivery_limit: int) -> RabbitQueue:
    """`notifier.events`: quorum, durable, single active consumer, bounded redeliveries.

    Single active consumer: with several notifier replicas only one consumes at a time, so the
    per-bot rate limit (which Telegram counts per bot, not per process) is never doubled; the
    others take over within seconds if it dies. Messages redelivered more than `delivery_limit`
    times (a crash loop on one message) are dead-lettered at-least-once to the DLQ.
    """
    arguments: dict[str, Any] = {
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DLX_EXCHANGE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-single-active-consumer": True,
    }
    return RabbitQueue(
        NOTIFIER_QUEUE,
        queue_type=QueueType.QUORUM,
        durable=True,
        arguments=arguments,  # type: ignore[call-overload]
        routing_key=NOTIFICATION_TYPES[0].value,
    )


DEAD_LETTER_QUEUE = RabbitQueue(NOTIFIER_DLQ, queue_type=QueueType.QUORUM, durable=True)


async def declare(broker: RabbitBroker, delivery_limit: int) -> None:
    """Declare exchanges and queues and bind every notification type (idempotent)."""
    events = await broker.declare_exchange(EVENTS_EXCHANGE)
    dlx = await broker.declare_exchange(DEAD_LETTER_EXCHANGE)
    queue = await broker.declare_queue(notifier_queue(delivery_limit))
    for event_type in NOTIFICATION_TYPES:
        await queue.bind(events, routing_key=event_type.value)
    dlq = await broker.declare_queue(DEAD_LETTER_QUEUE)
    # Dead letters keep their routing key; other services' DLQs share the exchange, so bind
    # only the types this queue consumes.
    for event_type in NOTIFICATION_TYPES:
        await dlq.bind(dlx, routing_key=event_type.value)
