"""The Telegram Bot API stand-in, in-process (the `standin` fixture, in the test's event loop) or
as a process of its own (`standin_process`: its timing independent of the test's loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from services.standin.client import StandInClient
from services.standin.server import StandIn
from tests.support.processes import Service, free_port
from tests.support.waiting import eventually


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    """A fresh in-process stand-in on a free loopback port, with its default bot."""
    async with StandIn(host="127.0.0.1", port=0) as s:
        yield s


@asynccontextmanager
async def standin_process(log_dir: Path, *args: str) -> AsyncIterator[StandInClient]:
    """`python -m services.standin ARGS` on a free port, logging to `<log_dir>/standin.log`;
    yields a client once it answers (`client.base_url` is the Bot API base); stopped after."""
    port = free_port()
    argv = ["-m", "services.standin", "--port", str(port), *args]
    service = Service("standin", argv, {}, log_dir / "standin.log", port=port).start()
    client = StandInClient(service.url())
    try:

        async def answers() -> bool:
            assert service.alive, service.log_text()
            try:
                await client.info()
                return True
            except Exception:
                return False

        await eventually(answers, 30, 0.1, "stand-in answering")
        yield client
    finally:
        await client.close()
        service.stop(10)
