"""A linker served over real HTTP by uvicorn in a thread of its own (for synchronous clients
such as schemathesis), with its own Telegram stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from services.common.telegram import make_bot
from services.linker.app import create_app
from services.standin.server import StandIn
from shared.db import create_engine
from shared.publisher import EventPublisher
from tests.linker.helpers import linker_settings
from tests.served import ServedApp


class ServedLinker(ServedApp):
    """`with ServedLinker(database_url, rabbitmq_url) as s:` then call `s.base_url`."""

    name = "linker"

    def __init__(self, database_url: str, rabbitmq_url: str, startup_timeout: float = 30) -> None:
        super().__init__(startup_timeout)
        self.database_url = database_url
        self.rabbitmq_url = rabbitmq_url

    @asynccontextmanager
    async def app(self) -> AsyncIterator[Any]:
        async with StandIn(port=0) as standin:
            settings = linker_settings(self.database_url, self.rabbitmq_url, standin.base_url)
            engine = create_engine(self.database_url, pool_size=5)
            try:
                yield create_app(
                    settings, engine, EventPublisher(self.rabbitmq_url), make_bot(settings)
                )
            finally:
                await engine.dispose()
