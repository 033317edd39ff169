"""The linker's consumer of the notifier's `telegram.blocked`, `telegram.chat_migrated` and
`telegram.topic_closed`.

Queue `linker.events`: quorum, durable, bound to the internal exchange `sns.telegram.internal`
(never to `sns.events`, which every platform team can write to) for those routing keys, at
most `DELIVERY_LIMIT` deliveries, dead letters to `sns.events.dlx` with routing key
`linker.events.dlq` (queue `linker.events.dlq`). A message without our services' signature
(services/common/internal_events.py) or that is invalid is rejected to the DLQ at once; a
failure while handling a valid one is retried (requeued) until the delivery limit, then
dead-lettered.
"""

from __future__ import annotations

import logging

from faststream.exceptions import RejectMessage
from faststream.middlewares import AckPolicy
from faststream.rabbit import (
    Channel,
    ExchangeType,
    QueueType,
    RabbitBroker,
    RabbitExchange,
    RabbitQueue,
)
from faststream.rabbit.annotations import RabbitMessage
from prometheus_client import Counter

from services.common import tracing
from services.common.internal_events import is_signed
from services.common.logging import log_context
from services.common.web import ReadinessCheck
from services.linker.service import LinkService
from shared.contract import (
    DLX_EXCHANGE,
    EXCHANGE,
    INTERNAL_EXCHANGE,
    INTERNAL_TYPES,
    LINKER_DLQ,
    LINKER_QUEUE,
    EventType,
    InvalidEvent,
    TelegramBlockedData,
    TelegramChatMigratedData,
    TelegramTopicClosedData,
    parse_event,
)

log = logging.getLogger(__name__)

DELIVERY_LIMIT = 5
CONSUMED_TYPES = INTERNAL_TYPES

EVENTS = Counter("linker_events_consumed_total", "telegram.* events consumed", ["type", "outcome"])

INTERNAL = RabbitExchange(INTERNAL_EXCHANGE, type=ExchangeType.TOPIC, durable=True)
PUBLIC = RabbitExchange(EXCHANGE, type=ExchangeType.TOPIC, durable=True)
"""Where the linker's queue was bound before internal events had an exchange of their own."""
DEAD_LETTER_EXCHANGE = RabbitExchange(DLX_EXCHANGE, type=ExchangeType.TOPIC, durable=True)
QUEUE = RabbitQueue(
    LINKER_QUEUE,
    queue_type=QueueType.QUORUM,
    durable=True,
    arguments={
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DLX_EXCHANGE,
        "x-dead-letter-routing-key": LINKER_DLQ,
        # Dead letters are confirmed by the DLQ before they leave this queue.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    },
    routing_key=EventType.TELEGRAM_BLOCKED.value,
)
DEAD_LETTER_QUEUE = RabbitQueue(
    LINKER_DLQ, queue_type=QueueType.QUORUM, durable=True, routing_key=LINKER_DLQ
)


def make_broker(url: str, links: LinkService, key: bytes, *, prefetch: int = 16) -> RabbitBroker:
    """A broker whose one subscriber applies the notifier's events, signed with `key`
    (`internal_events_key` of the bot token), to the links."""
    # faststream's own logger writes plain text to stdout, message ids and errors unescaped;
    # ours goes through the service's formatter (one escaped, redacted line per record).
    broker = RabbitBroker(
        url,
        graceful_timeout=10.0,
        logger=log,
        log_level=logging.DEBUG,
        middlewares=tracing.broker_middlewares(),  # none unless tracing is on
    )

    @broker.subscriber(
        QUEUE,
        INTERNAL,
        channel=Channel(prefetch_count=prefetch),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="linker.events",
    )
    async def handle(message: RabbitMessage) -> None:
        """Pause links Telegram refused; move links of migrated groups; clear closed topics."""
        if not is_signed(key, message.body, message.raw_message.headers):
            EVENTS.labels("unknown", "unsigned").inc()
            log.error(
                "internal event without our services' signature rejected to %s "
                "(published by someone else, or signed with a bot token since rotated)",
                LINKER_DLQ,
            )
            raise RejectMessage
        try:
            event, data = parse_event(message.body)
        except InvalidEvent as exc:
            EVENTS.labels("unknown", "invalid").inc()
            log.error("invalid event rejected to %s: %s", LINKER_DLQ, exc)
            raise RejectMessage from None
        with log_context(event_id=str(event.event_id), event_type=event.type.value):
            if isinstance(data, TelegramBlockedData):
                await links.on_blocked(event.user_id, event.occurred_at, data.reason)
            elif isinstance(data, TelegramChatMigratedData):
                await links.on_chat_migrated(event.user_id, event.occurred_at, data.new_chat_id)
            elif isinstance(data, TelegramTopicClosedData):
                await links.on_topic_closed(event.user_id, data.message_thread_id, data.reason)
            else:
                EVENTS.labels(event.type.value, "unexpected").inc()
                log.error("event type %s is not for the linker; rejected", event.type.value)
                raise RejectMessage
            EVENTS.labels(event.type.value, "applied").inc()

    return broker


async def declare_topology(broker: RabbitBroker) -> None:
    """Declare the queue's bindings, the dead-letter exchange and the DLQ (idempotent); remove
    the bindings to `sns.events` a linker before internal events had their own exchange made."""
    internal = await broker.declare_exchange(INTERNAL)
    public = await broker.declare_exchange(PUBLIC)
    queue = await broker.declare_queue(QUEUE)
    for event_type in CONSUMED_TYPES:
        await queue.bind(internal, routing_key=event_type.value)
        await queue.unbind(public, routing_key=event_type.value)
    dead_letters = await broker.declare_exchange(DEAD_LETTER_EXCHANGE)
    dlq = await broker.declare_queue(DEAD_LETTER_QUEUE)
    await dlq.bind(dead_letters, routing_key=LINKER_DLQ)


def broker_ready(broker: RabbitBroker) -> ReadinessCheck:
    """A readiness check on the consumer's connection."""

    async def check() -> None:
        if not await broker.ping(timeout=2.0):
            raise ConnectionError("RabbitMQ connection is down")

    return check
