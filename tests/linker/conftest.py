"""Linker test fixtures: the linker app running in-process on real parts, an event tap, and the
use cases over in-memory fakes (`ports`).

`linker` builds the app with `create_app` over the run's PostgreSQL database, this test's own
RabbitMQ vhost and an in-process Telegram stand-in, runs its lifespan (consumer and long polling
start for real), and talks to it through httpx's ASGI transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.callbacks import callback_key, sign
from services.common.telegram import make_bot
from services.linker.app import create_app
from services.linker.settings import LinkerSettings
from services.standin.server import StandIn
from services.standin.state import CallbackRecord
from shared.contract import Event, EventType, parse_event
from shared.db import create_engine
from shared.publisher import EventPublisher
from tests.linker.fakes import Ports, fake_service
from tests.linker.helpers import (
    FakeClock,
    bearer,
    bot_texts,
    linker_settings,
    wait_for_bot_messages,
)
from tests.support.bus import bound_queue


@dataclass
class Linker:
    """A running in-process linker and what a test needs to drive it."""

    app: FastAPI
    client: httpx.AsyncClient
    standin: StandIn
    settings: LinkerSettings
    clock: FakeClock
    rabbitmq_url: str

    def bot_texts(self, chat_id: int) -> list[str]:
        """The texts the bot sent to this chat, oldest first."""
        return bot_texts(self.standin, chat_id)

    async def link(self, user_id: str, chat_id: int, **user_sends: Any) -> str:
        """Link `user_id` to `chat_id` the way a person does; returns the token used."""
        response = await self.client.get("/api/telegram/link-account", headers=bearer(user_id))
        assert response.status_code == 200, response.text
        token = str(response.json()["token"])
        reply = await self.say(chat_id, f"/start {token}", **user_sends)
        assert reply.startswith("✅ Telegram 계정이 연결되었습니다!"), reply
        return token

    async def say(self, chat_id: int, text: str, **user_sends: Any) -> str:
        """Send `text` as the user and return the bot's reply."""
        before = len(self.bot_texts(chat_id))
        self.standin.user_sends(chat_id, text, **user_sends)
        await wait_for_bot_messages(self.standin, chat_id, before + 1)
        return self.bot_texts(chat_id)[-1]

    async def status(self, user_id: str) -> dict[str, Any]:
        """The body of GET /api/telegram/status for `user_id`."""
        response = await self.client.get("/api/telegram/status", headers=bearer(user_id))
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def preferences(self, user_id: str) -> dict[str, Any]:
        """The body of GET /api/telegram/preferences for `user_id`."""
        response = await self.client.get("/api/telegram/preferences", headers=bearer(user_id))
        assert response.status_code == 200, response.text
        return dict(response.json())

    def sign(
        self, chat_id: int, action: str, argument: str = "", issued_at: datetime | None = None
    ) -> str:
        """Callback data signed for `chat_id` the way the notifier signs its buttons, dated
        `issued_at` (default: the linker's clock, so a test moves both together)."""
        token = self.settings.telegram_bot_token
        assert token is not None
        key = callback_key(token.get_secret_value())
        return sign(key, chat_id, action, argument, issued_at=issued_at or self.clock())

    async def notify(self, chat_id: int, text: str, buttons: dict[str, str]) -> int:
        """Send a message with inline buttons (label -> callback data) as the notifier would."""
        token = self.settings.telegram_bot_token
        assert token is not None
        keyboard = [[{"text": label, "callback_data": data}] for label, data in buttons.items()]
        status, body = await self.standin.state.call(
            token.get_secret_value(),
            "sendMessage",
            {"chat_id": chat_id, "text": text, "reply_markup": {"inline_keyboard": keyboard}},
        )
        assert status == 200, body
        return int(body["result"]["message_id"])

    async def press(self, chat_id: int, message_id: int, data: str) -> CallbackRecord:
        """Press a button with `data` on a message; returns the press once it was answered."""
        update = self.standin.press(chat_id, message_id, data)
        return await self.standin.wait_for_callback_answer(update["callback_query"]["id"])


LinkerFactory = Callable[..., Awaitable[Linker]]


@pytest.fixture
def ports() -> Ports:
    """A `LinkService` over fresh in-memory fakes, chat ids encrypted (the unit tests')."""
    return fake_service([Fernet.generate_key().decode()])


@pytest.fixture
async def start_linker(
    engine: AsyncEngine, rabbitmq_url: str, database_url: str, standin: StandIn
) -> AsyncIterator[LinkerFactory]:
    """Start a linker with optional setting overrides; stopped at the end of the test."""
    started: list[tuple[Any, httpx.AsyncClient]] = []
    engines: list[AsyncEngine] = []

    async def start(*, own_database_url: str | None = None, **overrides: Any) -> Linker:
        """`own_database_url`: a database of the test's own instead of the run's shared one."""
        url = own_database_url or database_url
        settings = linker_settings(url, rabbitmq_url, standin.base_url, **overrides)
        clock = FakeClock()
        on = engine
        if own_database_url is not None:
            on = create_engine(own_database_url, pool_size=5)
            engines.append(on)
        app = create_app(
            settings, on, EventPublisher(rabbitmq_url), make_bot(settings), clock=clock
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://linker")
        started.append((lifespan, client))
        return Linker(app, client, standin, settings, clock, rabbitmq_url)

    yield start
    for lifespan, client in reversed(started):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
    for own in engines:
        await own.dispose()


@pytest.fixture
async def linker(start_linker: LinkerFactory) -> Linker:
    """A linker with the default test settings."""
    return await start_linker()


class EventTap:
    """A queue bound to `sns.events` for some routing keys, to see what the linker published."""

    def __init__(self, queue: aio_pika.abc.AbstractQueue) -> None:
        self.queue = queue

    async def next(self, timeout: float = 10.0) -> Event:
        """The next event on the queue (acknowledged)."""
        message = await self.queue.get(timeout=timeout)
        await message.ack()
        event, _ = parse_event(message.body)
        return event


@pytest.fixture
async def tap(rabbitmq_url: str) -> AsyncIterator[Callable[..., Awaitable[EventTap]]]:
    """`await tap(*event_types)` binds a fresh queue and returns an `EventTap` on it."""
    connection = await aio_pika.connect_robust(rabbitmq_url)
    channel = await connection.channel()

    async def bind(*types: EventType) -> EventTap:
        return EventTap(await bound_queue(channel, *(t.value for t in types)))

    yield bind
    await connection.close()
