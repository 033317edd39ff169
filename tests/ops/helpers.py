"""Helpers of the operations tests: topology, dead letters put in place as the services do."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
from faststream.rabbit import RabbitBroker
from rich.console import Console

from services.linker.events import declare_topology as declare_linker_topology
from services.notifier.topology import declare as declare_notifier_topology
from shared.contract import (
    DLQ_ERROR_HEADER,
    DLQ_REASON_HEADER,
    DLX_EXCHANGE,
    Event,
    new_event,
)
from tests.support.bus import bound_queue
from tests.support.waiting import eventually


async def declare_topology(url: str, *, linker: bool = False) -> None:
    """The notifier's exchanges and queues (and the linker's), as the services declare them."""
    broker = RabbitBroker(url, logger=None)
    await broker.connect()
    try:
        await declare_notifier_topology(broker, 5)
        if linker:
            await declare_linker_topology(broker)
    finally:
        await broker.stop()


def sample_event(event_type: str = "post_success", **data: Any) -> Event:
    defaults: dict[str, dict[str, Any]] = {
        "post_success": {"platform": "instagram", "likes": 1234, "comments": 56},
        "post_failure": {"platform": "instagram", "error": "Connection timeout"},
    }
    return new_event(event_type, f"user-{uuid.uuid4().hex[:8]}", {**defaults[event_type], **data})


async def dead_letter(
    url: str,
    body: bytes,
    *,
    routing_key: str,
    message_id: str | None,
    reason: str = "undeliverable",
    error: str = "Forbidden: bot was blocked by the user",
    extra_headers: dict[str, Any] | None = None,
) -> None:
    """Put a message in the notifier's DLQ exactly as `services.notifier.main.dead_letter` does."""
    headers: dict[str, Any] = dict(extra_headers or {})
    headers.update(
        {
            DLQ_REASON_HEADER: reason,
            DLQ_ERROR_HEADER: error,
            "x-original-routing-key": routing_key,
            "x-dead-lettered-at": datetime.now(UTC).isoformat(),
        }
    )
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(DLX_EXCHANGE)
        await exchange.publish(
            aio_pika.Message(
                body,
                headers=headers,
                message_id=message_id,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key,
            mandatory=True,
        )


async def dead_letter_event(url: str, event: Event, **kwargs: Any) -> Event:
    """Dead-letter a valid event (routing key = its type, message_id = its id)."""
    await dead_letter(
        url,
        event.to_json(),
        routing_key=event.type.value,
        message_id=str(event.event_id),
        **kwargs,
    )
    return event


async def queue_size(url: str, name: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def wait_size(url: str, name: str, expected: int) -> None:
    """Wait until the queue holds `expected` ready messages (requeues settle asynchronously)."""

    async def reached() -> bool:
        return await queue_size(url, name) == expected

    await eventually(reached)


async def drain(url: str, name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take (ack) every message now in the queue."""
    got = []
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(name)
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            got.append(message)
    return got


async def observe(url: str, *routing_keys: str) -> str:
    """A durable queue bound to `routing_keys` on sns.events, to see what a replay publishes."""
    name = f"observe-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await bound_queue(channel, *routing_keys, name=name)
    return name


def recording_console() -> tuple[Console, Callable[[], str]]:
    """A wide console writing to memory, and a function returning what it printed."""
    buffer = io.StringIO()
    return Console(file=buffer, width=220, highlight=False), buffer.getvalue
