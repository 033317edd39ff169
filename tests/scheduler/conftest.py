"""Fixtures of the scheduler's integration tests: a fresh database, a vhost, replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler.main import build_engine
from services.scheduler.settings import SchedulerSettings
from tests.scheduler.harness import Observer, Replica, make_settings, start_replica


@dataclass
class SchedulerEnv:
    settings: SchedulerSettings
    engine: AsyncEngine
    observer: Observer
    replica: Callable[..., Awaitable[Replica]]


@pytest.fixture
async def env(fresh_database_url: str, rabbitmq_url: str) -> AsyncIterator[SchedulerEnv]:
    """Settings on this test's own database and vhost, an observing queue, a replica factory."""
    settings = make_settings(fresh_database_url, rabbitmq_url)
    engine = build_engine(settings)
    observer = await Observer.bind(rabbitmq_url)
    started: list[Replica] = []

    async def replica(
        now: datetime, *, settings: SchedulerSettings = settings, **kw: Any
    ) -> Replica:
        one = await start_replica(settings, now, **kw)
        started.append(one)
        return one

    try:
        yield SchedulerEnv(settings, engine, observer, replica)
    finally:
        for one in started:
            await one.close()
        await observer.close()
        await engine.dispose()
