"""A notifier running in-process against real RabbitMQ, PostgreSQL and the Telegram stand-in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.internal_events import internal_events_key, is_signed
from services.common.telegram import bot_token
from services.notifier.main import Notifier, build, start, stop
from services.notifier.settings import NotifierSettings
from services.standin.server import StandIn
from shared.contract import INTERNAL_EXCHANGE, NOTIFIER_DLQ, Event
from shared.db import create_engine
from shared.publisher import EventPublisher
from tests.support.bus import bound_queue, take
from tests.support.ids import new_chat_id, new_user
from tests.support.links import seed_links
from tests.support.waiting import eventually


@dataclass
class Harness:
    notifier: Notifier
    standin: StandIn
    publisher: EventPublisher
    engine: AsyncEngine
    rabbitmq_url: str

    async def link(
        self, user_id: str, chat_id: int | str, *, enabled: bool = True, **extra: Any
    ) -> None:
        """Link `user_id` to `chat_id` as the linker would (`extra`: more of the link's columns)."""
        await seed_links(self.engine, [(user_id, chat_id)], enabled=enabled, **extra)

    async def new_link(self, **extra: Any) -> tuple[str, int]:
        """A new user linked to a new private chat (`extra`: more of the link's columns)."""
        user, chat = new_user(), new_chat_id()
        await self.link(user, chat, **extra)
        return user, chat

    async def publish(self, type_: str, user_id: str, data: dict[str, Any], **kw: Any) -> Event:
        return await self.publisher.send(type_, user_id, data, **kw)

    def texts(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.standin.messages(chat_id, "bot")]

    async def wait_texts(self, chat_id: int, count: int, timeout: float = 15.0) -> list[str]:
        await eventually(lambda: len(self.texts(chat_id)) >= count, timeout)
        return self.texts(chat_id)

    async def delivery(self, event: Event) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        text("SELECT * FROM deliveries WHERE event_id = :id"),
                        {"id": event.event_id},
                    )
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None

    async def wait_delivery(
        self, event: Event, status: str, timeout: float = 15.0
    ) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            row = await self.delivery(event)
            return row if row and row["status"] == status else None

        return await eventually(check, timeout)

    async def dead_letters(
        self, expected: int, timeout: float = 15.0
    ) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Read `expected` messages from the DLQ (acking them)."""
        return await take(self.rabbitmq_url, NOTIFIER_DLQ, expected, timeout)

    async def observe_internal(self, routing_key: str) -> Callable[[], list[dict[str, Any]]]:
        """Bind a queue to `routing_key` on the internal exchange, where the notifier tells the
        linker about chats; return a function listing the events that arrived signed with the
        bot token's key (an unsigned one fails the test)."""
        key = internal_events_key(bot_token(self.notifier.settings))
        connection = await aio_pika.connect(self.rabbitmq_url)
        channel = await connection.channel()
        queue = await bound_queue(channel, routing_key, exchange=INTERNAL_EXCHANGE)
        seen: list[dict[str, Any]] = []

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                assert is_signed(key, message.body, message.headers), message.headers
                seen.append(json.loads(message.body))

        await queue.consume(on_message)
        self._observers.append(connection)
        return lambda: seen

    def __post_init__(self) -> None:
        self._observers: list[aio_pika.abc.AbstractConnection] = []


@asynccontextmanager
async def running_notifier(
    database_url: str,
    rabbitmq_url: str,
    *,
    standin_limits: Any = None,
    clock: Callable[[], datetime] | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """Stand-in + notifier + publisher, all real, torn down afterwards (`clock`: the notifier's
    idea of now, for quiet hours)."""
    async with StandIn(limits=standin_limits) as standin:
        config = NotifierSettings(
            database_url=database_url,
            rabbitmq_url=rabbitmq_url,
            telegram_api_base=standin.base_url,
            **settings,
        )
        notifier = build(config) if clock is None else build(config, clock=clock)
        engine = create_engine(database_url, pool_size=2)
        publisher = EventPublisher(rabbitmq_url)
        await start(notifier)
        await publisher.connect()
        harness = Harness(notifier, standin, publisher, engine, rabbitmq_url)
        try:
            yield harness
        finally:
            await stop(notifier)
            await publisher.close()
            for connection in harness._observers:
                await connection.close()
            await engine.dispose()
