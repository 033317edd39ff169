"""Rows in every table the services write, dated as a test says: for retention and migration
tests (plain SQL, so they fit the schema of any migration since 0004)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import TextClause, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

TABLES = (
    "telegram_links",
    "link_tokens",
    "rate_limits",
    "processed_events",
    "activity",
    "deliveries",
    "summary_runs",
    "summary_schedules",
    "job_runs",
    "delivery_attempts",
    "button_presses",
)
"""Every table of the schema (alembic's own aside)."""
TABLES_0004 = TABLES[: TABLES.index("delivery_attempts")]
"""The tables as migration 0004 left them (the later ones came with 0006)."""

_INSERTS = {
    "telegram_links": """
        INSERT INTO telegram_links (user_id, chat_id, chat_type, enabled, linked_at, updated_at)
        VALUES (:user, :chat, 'private', true, :at, :at)""",
    "link_tokens": """
        INSERT INTO link_tokens (token_hash, user_id, created_at, expires_at, used_at)
        VALUES (:token, :user, :at, :at + interval '10 minutes', NULL)""",
    "rate_limits": "INSERT INTO rate_limits (key, tat) VALUES ('test_message:' || :user, :at)",
    "processed_events": """
        INSERT INTO processed_events (event_id, type, user_id, received_at)
        VALUES (:event, 'post_success', :user, :at)""",
    "activity": """
        INSERT INTO activity (event_id, user_id, type, occurred_at, platform, post_id, likes,
                              comments, details)
        VALUES (:event, :user, 'post_success', :at, 'instagram', :user, 1, 2, '{}')""",
    "deliveries": """
        INSERT INTO deliveries (dedupe_key, event_id, event_type, user_id, status, attempts,
                                created_at, updated_at, sent_at, telegram_message_id)
        VALUES (CAST(:event AS text), :event, 'post_success', :user, :status, 1, :at, :at, :at, 7)""",
    "summary_runs": """
        INSERT INTO summary_runs (user_id, summary_date, kind, event_id, due_at, created_at,
                                  published_at, attempts)
        VALUES (:user, CAST(:at AS date), 'scheduled', :event, :at, :at, :at, 1)""",
    "summary_schedules": """
        INSERT INTO summary_schedules (user_id, timezone, summary_time, summary_date, due_at)
        VALUES (:user, 'UTC', '09:00', CAST(:at AS date), :at + interval '1 day')""",
    "job_runs": """
        INSERT INTO job_runs (job_id, trigger, started_at, finished_at, emitted, failed, details)
        VALUES ('telegram_daily_summary', 'schedule', :at, :at, 1, 0,
                jsonb_build_object('user', CAST(:user AS text)))""",
    "delivery_attempts": """
        INSERT INTO delivery_attempts (delivery_id, event_id, attempt, at, failure, error_code,
                                       description, retry_after)
        VALUES (0, :event, 1, :at, 'retry_after', 429, CAST(:user AS text), 3)""",
    "button_presses": """
        INSERT INTO button_presses (event_id, user_id, action, outcome, pressed_at)
        VALUES (:event, :user, 'retry', 'requested', :at)""",
}


@dataclass
class Seeded:
    """One row in each table: the keys that find them again."""

    user: str
    at: datetime
    event: uuid.UUID = field(default_factory=uuid.uuid4)
    token: str = field(default_factory=lambda: uuid.uuid4().hex * 2)

    def params(self, status: str = "sent") -> dict[str, object]:
        return {
            "user": self.user,
            "chat": str(abs(hash(self.user)) % 10**9),
            "at": self.at,
            "event": self.event,
            "token": self.token,
            "status": status,
        }


def inserts(tables: tuple[str, ...] = TABLES) -> list[TextClause]:
    """One insert per table, taking `Seeded.params()`."""
    return [text(_INSERTS[table]) for table in tables]


def owner(table: str) -> str:
    """The SQL expression of a row's user in `table` (`Seeded.user`)."""
    return {
        "job_runs": "(details ->> 'user')",
        "rate_limits": "substr(key, 14)",
        "link_tokens": "user_id",
        "delivery_attempts": "description",
    }.get(table, "user_id")


def counts(
    rows: Seeded, tables: tuple[str, ...] = TABLES
) -> list[tuple[str, TextClause, dict[str, object]]]:
    """(table, statement, parameters) counting how many of `rows` each table still holds."""
    out = []
    for table in tables:
        statement = text(f"SELECT count(*) FROM {table} WHERE {owner(table)} = :value")  # noqa: S608
        out.append((table, statement, {"value": rows.user}))
    return out


def seed_every_table(
    conn: Connection, user: str, at: datetime, tables: tuple[str, ...] = TABLES
) -> Seeded:
    """One row in every table (sync connection), dated `at`."""
    rows = Seeded(user, at)
    for statement in inserts(tables):
        conn.execute(statement, rows.params())
    return rows


def count_every_table(
    conn: Connection, rows: Seeded, tables: tuple[str, ...] = TABLES
) -> dict[str, int]:
    """How many of `rows` each table still holds (sync connection)."""
    return {table: int(conn.execute(q, p).scalar_one()) for table, q, p in counts(rows, tables)}


async def seed_every_table_async(
    conn: AsyncConnection, user: str, at: datetime, *, status: str = "sent"
) -> Seeded:
    """One row in every table, dated `at` (activity's `recorded_at` too); `status` the
    delivery's."""
    rows = Seeded(user, at)
    for statement in inserts():
        await conn.execute(statement, rows.params(status))
    await conn.execute(
        text("UPDATE activity SET recorded_at = :at WHERE event_id = :event"),
        {"at": at, "event": rows.event},
    )
    return rows


async def count_every_table_async(conn: AsyncConnection, rows: Seeded) -> dict[str, int]:
    """How many of `rows` each table still holds."""
    return {table: int((await conn.execute(q, p)).scalar_one()) for table, q, p in counts(rows)}
