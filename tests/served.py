"""An ASGI app served over real HTTP by uvicorn in a thread of its own, for synchronous clients
such as schemathesis (with `FUZZ`, the settings of those tests). Subclasses say how to build the
app (and what to close after it)."""

from __future__ import annotations

import asyncio
import threading
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self

import uvicorn
from hypothesis import HealthCheck, settings

from tests.support.processes import free_port

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
"""How the API fuzz tests (schemathesis against a served app) run: the same examples every run."""


class ServedApp:
    """`with Served...(...) as s:` then call `s.base_url`; `app()` builds what is served."""

    name = "app"
    lifespan = "on"

    def __init__(self, startup_timeout: float = 30) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._timeout = startup_timeout
        self._ready = threading.Event()
        self._server: uvicorn.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"served-{self.name}", daemon=True)

    def app(self) -> AbstractAsyncContextManager[Any]:
        """An async context manager yielding the ASGI app; left when the server stops."""
        raise NotImplementedError

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        async with self.app() as app:
            config = uvicorn.Config(
                app, host="127.0.0.1", port=self.port, lifespan=self.lifespan, log_config=None
            )
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve())
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.02)
            self._ready.set()
            await serving

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError(f"the {self.name} did not start within {self._timeout} s")
        if self._error is not None or self._server is None or not self._server.started:
            raise RuntimeError(f"the {self.name} did not start") from self._error
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
