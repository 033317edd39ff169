"""The scheduler's admin API served over real HTTP by uvicorn in a thread of its own (for
synchronous clients such as schemathesis), over a replica on the given database and vhost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from services.scheduler.main import build_app
from tests.scheduler.harness import make_settings, start_replica
from tests.served import ServedApp


class ServedScheduler(ServedApp):
    """`with ServedScheduler(database_url, rabbitmq_url, now) as s:` then call `s.base_url`."""

    name = "scheduler"
    lifespan = "off"

    def __init__(
        self, database_url: str, rabbitmq_url: str, now: datetime, startup_timeout: float = 30
    ) -> None:
        super().__init__(startup_timeout)
        self.settings = make_settings(database_url, rabbitmq_url)
        self.now = now

    @asynccontextmanager
    async def app(self) -> AsyncIterator[Any]:
        replica = await start_replica(self.settings, self.now)
        try:
            yield build_app(self.settings, replica.job, replica.engine, replica.publisher)
        finally:
            await replica.close()
