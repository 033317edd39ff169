"""The publisher for platform services: typed events, publisher confirms, persistent delivery.

    async with EventPublisher(os.environ["RABBITMQ_URL"]) as publisher:
        await publisher.publish(new_event("post_success", user_id, {...}))

`publish` returns only once RabbitMQ has confirmed the message; it raises `PublishError` when the
broker refused it (nack) or could not route it (no queue bound for its type).

Tracing (OpenTelemetry, API only): each publish is a producer span, a child of the current span
or the start of a new trace, and its context travels in the message's `traceparent` header. It
records nothing until the process installs an OpenTelemetry SDK (our services do when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set; a platform service may do the same with its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError
from aio_pika.exceptions import PublishError as UnroutableError
from aiormq.exceptions import ChannelInvalidStateError
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pamqp.commands import Basic

from shared.contract import EXCHANGE, Event, EventType, new_event

_TRACER = trace.get_tracer("shared.publisher")
"""Follows OpenTelemetry's global provider: a no-op until a process installs an SDK."""


class PublishError(RuntimeError):
    """The broker did not confirm the event, or could not route it to any queue."""


def to_message(event: Event, headers: dict[str, Any] | None = None) -> aio_pika.Message:
    """The AMQP message for an event, as the contract specifies it (docs/architecture.md)."""
    return aio_pika.Message(
        body=event.to_json(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(event.event_id),
        type=event.type.value,
        timestamp=event.occurred_at,
        headers=headers or {},
    )


class EventPublisher:
    """Publishes contract events to `sns.events` with confirms; one instance per process."""

    def __init__(self, url: str, *, exchange: str = EXCHANGE, timeout: float = 10.0) -> None:
        self._url = url
        self._exchange_name = exchange
        self._timeout = timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def connect(self) -> None:
        """Open the connection and a confirming channel; declare the exchange."""
        self._connection = await aio_pika.connect_robust(self._url, timeout=self._timeout)
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchange = await self._channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def close(self) -> None:
        """Close the connection (waits for nothing: every publish already awaited its confirm)."""
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = self._exchange = None

    async def __aenter__(self) -> EventPublisher:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def is_connected(self) -> bool:
        """True while the connection to the broker is open."""
        return self._connection is not None and not self._connection.is_closed

    async def publish(
        self, event: Event, *, mandatory: bool = True, headers: dict[str, Any] | None = None
    ) -> None:
        """Publish one event and wait for the broker's confirm; raise `PublishError` if refused."""
        routing_key = event.type.value
        with _TRACER.start_as_current_span(
            f"{self._exchange_name}.{routing_key} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "send",
                "messaging.destination.name": self._exchange_name,
                "messaging.rabbitmq.destination.routing_key": routing_key,
                "messaging.message.id": str(event.event_id),
            },
            record_exception=False,  # messages may quote the broker's URL; the type is enough
            set_status_on_exception=False,
        ) as span:
            traced = dict(headers or {})
            propagate.inject(traced)
            try:
                await self._publish(event, mandatory, traced)
            except PublishError as exc:
                span.set_attribute("error.type", type(exc.__cause__ or exc).__name__)
                span.set_status(Status(StatusCode.ERROR))
                raise

    async def _publish(self, event: Event, mandatory: bool, headers: dict[str, Any]) -> None:
        if self._exchange is None:
            raise PublishError("publisher is not connected: call connect() first")
        try:
            confirmation = await self._exchange.publish(
                to_message(event, headers),
                routing_key=event.type.value,
                mandatory=mandatory,
                timeout=self._timeout,
            )
        except UnroutableError as exc:
            raise PublishError(
                f"event {event.event_id} ({event.type}) was not routed to any queue"
            ) from exc
        except DeliveryError as exc:
            raise PublishError(f"event {event.event_id} was refused by the broker") from exc
        except (
            TimeoutError,
            aio_pika.exceptions.AMQPError,
            ChannelInvalidStateError,  # the channel is being reopened after a broker restart
            ConnectionError,
        ) as exc:
            raise PublishError(f"event {event.event_id} was not confirmed: {exc!r}") from exc
        if not isinstance(confirmation, Basic.Ack):
            raise PublishError(f"event {event.event_id} was refused by the broker: {confirmation}")

    async def publish_many(self, events: Iterable[Event], *, window: int = 500) -> None:
        """Publish many events with pipelined confirms (at most `window` unconfirmed at once).

        Raises `PublishError` listing how many were not confirmed; the caller retries those.
        """
        semaphore = asyncio.Semaphore(window)
        failures: list[BaseException] = []

        async def one(event: Event) -> None:
            async with semaphore:
                try:
                    await self.publish(event)
                except PublishError as exc:
                    failures.append(exc)

        await asyncio.gather(*(one(e) for e in events))
        if failures:
            raise PublishError(f"{len(failures)} events were not confirmed; first: {failures[0]}")

    async def send(
        self, type: EventType | str, user_id: str | int, data: dict[str, Any], **kwargs: Any
    ) -> Event:
        """Build, validate and publish an event in one call (the seed's send_sns_notification)."""
        event = new_event(type, user_id, data, **kwargs)
        await self.publish(event)
        return event
