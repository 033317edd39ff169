"""Composition root of the scheduler: settings, engine, publisher, job, admin API, the loop.

`run()` is `sns-telegram scheduler`. The factories below let tests and benchmarks build the same
pieces in-process (with a fixed clock, their own database and vhost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from aio_pika.exceptions import AMQPError
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import tracing
from services.common.auth import make_verifier
from services.common.logging import configure_logging
from services.common.web import EmbeddedServer, broker_check, database_check, stop_on_signals
from services.scheduler.api import create_app
from services.scheduler.clock import Clock, SystemClock
from services.scheduler.config import JobConfig
from services.scheduler.job import DailySummaryJob
from services.scheduler.ports import TriggerPublisher
from services.scheduler.settings import SchedulerSettings
from services.scheduler.store import PostgresStore
from services.scheduler.upkeep import RetentionJob
from shared.db import create_engine
from shared.publisher import EventPublisher
from shared.settings import ConfigurationError

log = logging.getLogger("services.scheduler")


def instance_name() -> str:
    """This replica's name in logs and job runs: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def job_config(settings: SchedulerSettings, instance: str | None = None) -> JobConfig:
    """The job's knobs from the settings."""
    return JobConfig(
        catch_up=settings.catch_up,
        tick=settings.tick,
        batch_size=settings.scheduler_batch_size,
        publish_window=settings.scheduler_publish_window,
        lanes=settings.scheduler_lanes,
        mandatory=settings.scheduler_publish_mandatory,
        instance=instance or instance_name(),
    )


def build_engine(settings: SchedulerSettings) -> AsyncEngine:
    """The database engine, sized for one replica."""
    return create_engine(
        settings.database_url.get_secret_value(), pool_size=settings.scheduler_db_pool_size
    )


def build_publisher(settings: SchedulerSettings) -> EventPublisher:
    """The confirming publisher to `sns.events` (not connected yet)."""
    return EventPublisher(
        settings.rabbitmq_url.get_secret_value(),
        timeout=settings.scheduler_publish_timeout_seconds,
    )


def build_job(
    settings: SchedulerSettings,
    engine: AsyncEngine,
    publisher: TriggerPublisher,
    clock: Clock | None = None,
    instance: str | None = None,
) -> DailySummaryJob:
    """The daily summary job over real or test parts."""
    return DailySummaryJob(
        PostgresStore(engine), publisher, clock or SystemClock(), job_config(settings, instance)
    )


def build_app(
    settings: SchedulerSettings,
    job: DailySummaryJob,
    engine: AsyncEngine,
    publisher: TriggerPublisher,
) -> FastAPI:
    """The admin API with readiness on the database and the broker."""
    checks = {
        "database": database_check(engine),
        "broker": broker_check(lambda: publisher.is_connected),
    }
    return create_app(job, make_verifier(settings, admin=True), checks)


async def serve(settings: SchedulerSettings) -> None:
    """Run the loop and the admin API until SIGTERM/SIGINT, or until the loop fails."""
    engine = build_engine(settings)
    publisher = build_publisher(settings)
    job = build_job(settings, engine, publisher)
    app = build_app(settings, job, engine, publisher)
    try:
        await publisher.connect()
    except (OSError, TimeoutError, AMQPError) as exc:
        # Not fatal: triggers are recorded anyway and published once the broker answers.
        log.warning("broker not reachable at startup; will retry every tick: %r", exc)
    server = EmbeddedServer.serving(app, settings.scheduler_host, settings.scheduler_port)
    stop = stop_on_signals()
    loop_task = asyncio.create_task(job.run_forever(stop), name="scheduler-loop")
    retention = RetentionJob(engine, settings, SystemClock(), job.config.instance)
    retention_task = asyncio.create_task(retention.run_forever(stop), name="scheduler-retention")
    http_task = asyncio.create_task(server.serve(), name="scheduler-http")
    stop_task = asyncio.create_task(stop.wait(), name="scheduler-stop")
    log.info(
        "scheduler running",
        extra={"port": settings.scheduler_port, "instance": job.config.instance},
    )
    try:
        await asyncio.wait({loop_task, http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("scheduler stopping")
        stop.set()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await http_task
        retention_task.cancel()  # a batch in flight is rolled back; the next slot redoes it
        with contextlib.suppress(asyncio.CancelledError):
            await retention_task
        try:
            await loop_task  # re-raises if the loop died: the process exits non-zero
        finally:
            await publisher.close()
            await engine.dispose()


def run() -> None:
    """Entry point of `sns-telegram scheduler`: a configuration error is one line on stderr and
    exit status 1, never a traceback."""
    try:
        settings = SchedulerSettings()
        settings.validate_for_production()
        make_verifier(settings, admin=True)  # an unusable JWT key fails here, not on a request
        tracing.setup("scheduler")
    except ConfigurationError as exc:
        raise SystemExit(f"scheduler: configuration error: {exc}") from None
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))
