"""Fixtures for the Telegram Bot API stand-in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from services.standin.server import StandIn

TOKEN = "123456:TEST-token-not-real"

BotFactory = Callable[..., Bot]


@pytest.fixture
async def make_bot() -> AsyncIterator[BotFactory]:
    """Factory for aiogram Bots pointed at a stand-in: make_bot(base_url, timeout=30)."""
    bots: list[Bot] = []

    def factory(base_url: str, timeout: float = 30.0) -> Bot:
        session = AiohttpSession(api=TelegramAPIServer.from_base(base_url), timeout=timeout)
        made = Bot(token=TOKEN, session=session)
        bots.append(made)
        return made

    yield factory
    for made in bots:
        await made.session.close()


@pytest.fixture
async def bot(standin: StandIn, make_bot: BotFactory) -> Bot:
    """A real aiogram Bot pointed at the stand-in."""
    return make_bot(standin.base_url)
