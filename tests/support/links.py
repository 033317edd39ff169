"""Seeding links: `telegram_links` rows written as the linker writes them, for the services that
read them (the notifier, the scheduler) in tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine
from shared.models import TelegramLink

LINKED = {"chat_type": "private", "enabled": True}
"""What every linked chat has unless the test says otherwise: a private chat, notifications on."""


async def seed_links(
    database: str | AsyncEngine, links: Iterable[tuple[str, int | str | None]], **columns: Any
) -> None:
    """Link each (user id, chat id), chat ids in plain text (the tests run without
    CHAT_ID_ENCRYPTION_KEY), linked now; `columns` (`enabled`, `chat_type`, `timezone`,
    `summary_time`, `language`, `muted_types`, quiet hours...) are the same for every row and
    replace `LINKED`'s. A user already linked has the given columns of its row replaced.

    `database` is an engine, or a URL for a connection of this call's own (which survives a
    restart of PostgreSQL between calls). One statement, however many links: benchmarks seed
    100,000 this way."""
    pairs = list(links)
    values = LINKED | columns
    names = ", ".join(values)
    params = ", ".join(f"CAST(:{name} AS {_column_type(name)})" for name in values)
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in ("chat_id", *values))
    statement = text(
        f"INSERT INTO telegram_links (user_id, chat_id, {names}, linked_at, updated_at) "  # noqa: S608
        f"SELECT u, c, {params}, now(), now() "
        "FROM unnest(CAST(:user_ids AS text[]), CAST(:chat_ids AS text[])) AS v(u, c) "
        f"ON CONFLICT (user_id) DO UPDATE SET {updates}, updated_at = now()"
    )
    arguments = {
        "user_ids": [user for user, _ in pairs],
        "chat_ids": [None if chat is None else str(chat) for _, chat in pairs],
        **values,
    }
    engine = create_engine(database, pool_size=1) if isinstance(database, str) else database
    try:
        async with engine.begin() as conn:
            await conn.execute(statement, arguments)
    finally:
        if engine is not database:
            await engine.dispose()


def _column_type(name: str) -> str:
    """The column's SQL type (each value is cast to it: `INSERT ... SELECT` does not infer it)."""
    column = TelegramLink.__table__.columns[name]  # type: ignore[attr-defined]
    return str(column.type.compile(dialect=postgresql.dialect()))
