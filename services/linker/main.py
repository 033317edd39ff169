"""Composition root of the linker: settings, engine, publisher and bot, served by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

import uvicorn

from services.common import tracing
from services.common.logging import configure_logging
from services.common.safe_text import redact
from services.common.telegram import make_bot
from services.linker.app import create_app
from services.linker.settings import LinkerSettings
from shared.db import create_engine
from shared.publisher import EventPublisher
from shared.settings import ConfigurationError

log = logging.getLogger(__name__)

STARTUP_FAILED = 3


class _Server(uvicorn.Server):
    """uvicorn, except that a SIGTERM/SIGINT stop ends the process with status 0.

    (uvicorn re-raises the captured signal after its graceful shutdown: status -15.)
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


async def serve(settings: LinkerSettings) -> bool:
    """Serve the linker until SIGINT/SIGTERM; False if it could not start."""
    database_url = settings.database_url.get_secret_value()
    engine = create_engine(database_url)
    bot = make_bot(settings)
    publisher = EventPublisher(settings.rabbitmq_url.get_secret_value())
    app = create_app(settings, engine, publisher, bot)
    config = uvicorn.Config(
        app,
        host=settings.linker_host,
        port=settings.linker_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)
    log.info(
        "linker starting",
        extra={"port": settings.linker_port, "database": redact(database_url)},
    )
    try:
        await server.serve()
    finally:
        await engine.dispose()
    log.info("linker stopped")
    return server.started


def run() -> None:
    """Entry point of `sns-telegram linker`."""
    try:
        settings = LinkerSettings()
        configure_logging(settings.log_level, settings.log_format)
        settings.validate_for_production()
        tracing.setup("linker")
        started = asyncio.run(serve(settings))
    except ConfigurationError as exc:
        raise SystemExit(f"linker: configuration error: {exc}") from None
    if not started:
        raise SystemExit(STARTUP_FAILED)
