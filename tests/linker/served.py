"""A linker served over real HTTP by uvicorn in a thread of its own (for synchronous clients
such as schemathesis), with its own Telegram stand-in."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

import uvicorn

from services.common.telegram import make_bot
from services.linker.app import create_app
from services.standin.server import StandIn
from shared.db import create_engine
from shared.publisher import EventPublisher
from tests.infra import free_port
from tests.linker.helpers import linker_settings


class ServedLinker:
    """`with ServedLinker(database_url, rabbitmq_url) as s:` then call `s.base_url`."""

    def __init__(self, database_url: str, rabbitmq_url: str, startup_timeout: float = 30) -> None:
        self.database_url = database_url
        self.rabbitmq_url = rabbitmq_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._timeout = startup_timeout
        self._ready = threading.Event()
        self._server: uvicorn.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="served-linker", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        async with StandIn(port=0) as standin:
            settings = linker_settings(self.database_url, self.rabbitmq_url, standin.base_url)
            engine = create_engine(self.database_url, pool_size=5)
            app = create_app(
                settings, engine, EventPublisher(self.rabbitmq_url), make_bot(settings)
            )
            config = uvicorn.Config(
                app, host="127.0.0.1", port=self.port, lifespan="on", log_config=None
            )
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve())
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.02)
            self._ready.set()
            try:
                await serving
            finally:
                await engine.dispose()

    def __enter__(self) -> ServedLinker:
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError(f"the linker did not start within {self._timeout} s")
        if self._error is not None or self._server is None or not self._server.started:
            raise RuntimeError("the linker did not start") from self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)
