"""Shared fixtures: real PostgreSQL and RabbitMQ, isolated per run (database) and per test (vhost)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import create_engine, drop_database, libpq_url, session_factory
from tests.infra import (
    Brokers,
    ServicesUnavailable,
    find_servers,
    isolated_database,
    isolated_vhost,
)
from tests.support.standin import standin

__all__ = ["standin"]  # the in-process stand-in, for every test that asks for it

# The services start in production unless told otherwise (APP_ENV defaults to production). Tests
# run development configurations (short secrets, the stand-in, no encryption key), so the whole
# session says so once, here: every settings object built in-process and every process a test
# spawns (they inherit this environment) is a development one. A test that needs production
# says APP_ENV=production (or app_env="production") itself.
os.environ["APP_ENV"] = "development"


@pytest.fixture(scope="session")
def servers() -> Iterator[Brokers]:
    """Reachable PostgreSQL and RabbitMQ servers; stops the run at once if there are none."""
    try:
        with find_servers() as found:
            yield found
    except ServicesUnavailable as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def template_database_url(servers: Brokers) -> Iterator[str]:
    """A migrated database used as the template of every test database of this run."""
    with isolated_database(servers, prefix="sns_tmpl") as url:
        yield url


def _clone(template_url: str, prefix: str) -> str:
    template = make_url(template_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = libpq_url(template.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template.database or "")
            )
        )
    return template.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(template_database_url: str) -> Iterator[str]:
    """The run's shared database: tests isolate their rows with unique ids."""
    url = _clone(template_database_url, "sns_test")
    yield url
    drop_database(url)


@pytest.fixture
def fresh_database_url(template_database_url: str) -> Iterator[str]:
    """An empty migrated database of this test's own, for tests that read whole tables."""
    url = _clone(template_database_url, "sns_fresh")
    yield url
    drop_database(url)


@pytest.fixture
def rabbitmq_url(servers: Brokers) -> Iterator[str]:
    """A RabbitMQ vhost of this test's own (exchanges and queues start empty)."""
    with isolated_vhost(servers) as url:
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An async engine on the run's shared database."""
    eng = create_engine(database_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory on the run's shared database."""
    return session_factory(engine)
