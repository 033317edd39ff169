"""The scheduler's admin API served over real HTTP by uvicorn in a thread of its own (for
synchronous clients such as schemathesis), over a replica on the given database and vhost."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from types import TracebackType

import uvicorn

from services.scheduler.main import build_app
from tests.infra import free_port
from tests.scheduler.harness import make_settings, start_replica


class ServedScheduler:
    """`with ServedScheduler(database_url, rabbitmq_url, now) as s:` then call `s.base_url`."""

    def __init__(
        self, database_url: str, rabbitmq_url: str, now: datetime, startup_timeout: float = 30
    ) -> None:
        self.settings = make_settings(database_url, rabbitmq_url)
        self.now = now
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._timeout = startup_timeout
        self._ready = threading.Event()
        self._server: uvicorn.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="served-scheduler", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        replica = await start_replica(self.settings, self.now)
        app = build_app(self.settings, replica.job, replica.engine, replica.publisher)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, lifespan="off", log_config=None
        )
        self._server = uvicorn.Server(config)
        serving = asyncio.create_task(self._server.serve())
        while not self._server.started and not serving.done():
            await asyncio.sleep(0.02)
        self._ready.set()
        try:
            await serving
        finally:
            await replica.close()

    def __enter__(self) -> ServedScheduler:
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError(f"the scheduler did not start within {self._timeout} s")
        if self._error is not None or self._server is None or not self._server.started:
            raise RuntimeError("the scheduler did not start") from self._error
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
