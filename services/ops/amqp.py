"""Connecting to RabbitMQ for one operator command, with errors an operator can act on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity

from services.common.safe_text import redact


class OpsError(RuntimeError):
    """A failure the command reports as `error: ...` and a non-zero exit status."""


@asynccontextmanager
async def connect(url: str, *, connect_timeout: float = 10.0) -> AsyncIterator[AbstractConnection]:
    """One plain (non-reconnecting) connection: if it drops, the broker requeues what we held."""
    try:
        connection = await aio_pika.connect(url, timeout=connect_timeout)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        raise OpsError(f"cannot connect to RabbitMQ at {redact(url)}: {exc!r}") from None
    try:
        yield connection
    finally:
        await connection.close()


async def existing_queue(channel: AbstractChannel, name: str) -> tuple[AbstractQueue, int]:
    """The queue (declared passively: never created here) and its current message count."""
    try:
        queue = await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        raise OpsError(
            f"queue {name!r} does not exist in this vhost "
            "(has the service that owns it ever started and declared its topology?)"
        ) from None
    count = queue.declaration_result.message_count
    return queue, int(count or 0)


async def existing_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    """The exchange (checked passively: never created here)."""
    try:
        return await channel.declare_exchange(name, passive=True)
    except ChannelNotFoundEntity:
        raise OpsError(
            f"exchange {name!r} does not exist in this vhost "
            "(start the notifier once to declare the topology)"
        ) from None
