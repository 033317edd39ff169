"""Publishing from a command (`sns-telegram publish`, `make demo`): one connection for one block,
as a platform service publishes (confirmed, `mandatory`), and a broker that cannot be reached said
in one line, the URL's password redacted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.common.safe_text import redact
from shared.publisher import EventPublisher


class BrokerUnreachable(RuntimeError):
    """RabbitMQ did not answer at the URL (the message names it, its password redacted)."""


@asynccontextmanager
async def connected(url: str, *, confirm_timeout: float = 10.0) -> AsyncIterator[EventPublisher]:
    """An `EventPublisher` connected to `url` for the block (`confirm_timeout`: for connecting and
    each confirm), closed after it; `BrokerUnreachable` if it cannot connect."""
    publisher = EventPublisher(url, timeout=confirm_timeout)
    try:
        await publisher.connect()
    except (OSError, TimeoutError) as exc:  # aio-pika's connection errors are OSErrors
        raise BrokerUnreachable(f"cannot connect to RabbitMQ at {redact(url)}: {exc!r}") from None
    try:
        yield publisher
    finally:
        await publisher.close()
