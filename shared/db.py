"""Database helpers: URL handling, engines, sessions, and `migrate` (create database + upgrade)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg_pool import PoolTimeout
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57P", "58")
"""SQLSTATEs that say the database cannot serve us now, whatever we send: connection exception
(08), transaction rollback (40: serialization failure, deadlock), insufficient resources (53),
operator intervention (57P: shutdown, cannot connect now) and system error (58)."""


def is_transient(error: BaseException) -> bool:
    """True when `error` means the database is unreachable or busy for now, so the same work
    will succeed later; False when it is about the work itself (bad data, a bug, a limit), which
    retrying would never fix.

    A bare `OSError` is not transient: `ZoneInfo("Asia")` raises one.
    """
    if isinstance(error, PoolTimeout):
        return True
    if isinstance(error, psycopg.OperationalError):
        state = error.sqlstate
        return state is None or state.startswith(TRANSIENT_SQLSTATE_CLASSES)
    return False


def sqlalchemy_url(url: str) -> str:
    """Accept `postgresql://` or `postgresql+psycopg://` (and `postgres://`); use psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {parsed.drivername!r}")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The plain libpq form of a DATABASE_URL, for psycopg connections."""
    return (
        make_url(sqlalchemy_url(url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine on psycopg 3 with a pool sized for one service process.

    Server-side prepared statements are off: PostgreSQL's generic plan for `= ANY(:ids)` is a
    sequential scan, so each query is planned with its actual parameters instead.
    """
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        echo=echo,
        connect_args={"prepare_threshold": None},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A factory of SQLModel async sessions bound to `engine`."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on error."""
    async with factory() as session, session.begin():
        yield session


def create_database_if_missing(url: str) -> bool:
    """Create the database named in `url` when it does not exist; True if it was created."""
    target = make_url(sqlalchemy_url(url))
    name = target.database
    if not name:
        raise ValueError("DATABASE_URL names no database")
    admin = target.set(database="postgres", drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(url: str) -> None:
    """Drop the database named in `url` (test helper; terminates its connections first)."""
    target = make_url(sqlalchemy_url(url))
    admin = target.set(database="postgres", drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(target.database or "")
            )
        )


def alembic_config(url: str) -> Config:
    """The alembic configuration for our migrations, pointed at `url`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> bool:
    """Create the database if missing, then upgrade it to `revision`; True if it was created."""
    from alembic import command

    created = create_database_if_missing(url)
    command.upgrade(alembic_config(url), revision)
    return created
