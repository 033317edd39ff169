"""The notifier's database work, one transaction per batch of events (never per message)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, case, func, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel

from services.notifier.render import DailyReport, PlatformTotals, platform_key
from shared.contract import EventType
from shared.models import Delivery

FINAL_STATUSES = ("sent", "skipped", "uncertain", "undeliverable")
"""A delivery in one of these states is never attempted again for the same dedupe key."""


@dataclass(frozen=True)
class Link:
    """What the notifier needs of a user's link."""

    user_id: str
    chat_id: str | None
    enabled: bool
    muted_types: tuple[str, ...]
    language: str


@dataclass(frozen=True)
class ActivityRow:
    """One platform event as recorded for the daily summary."""

    event_id: uuid.UUID
    user_id: str
    type: str
    occurred_at: datetime
    platform: str | None
    likes: int
    comments: int
    details: dict[str, object]


@dataclass(frozen=True)
class DeliveryIntent:
    """A delivery row to create (or resume) before sending."""

    dedupe_key: str
    event_id: uuid.UUID
    event_type: str
    user_id: str
    chat_ref: str | None
    status: str


@dataclass(frozen=True)
class DeliveryRow:
    """The delivery row as the database holds it after `begin_deliveries`."""

    id: int
    dedupe_key: str
    status: str
    attempts: int


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery, written after the send."""

    delivery_id: int
    event_id: uuid.UUID
    event_type: str
    user_id: str
    status: str
    telegram_message_id: int | None
    error: str | None
    attempts: int
    final: bool


@dataclass(frozen=True)
class SummaryWindow:
    """The UTC interval of one user's local day."""

    key: str
    user_id: str
    day: date
    timezone: str

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) of the local day in UTC (handles DST days of 23 or 25 hours)."""
        try:
            zone = ZoneInfo(self.timezone)
        except (KeyError, ValueError):
            zone = ZoneInfo("UTC")
        start = datetime.combine(self.day, time(0), zone).astimezone(UTC)
        end = datetime.combine(self.day + timedelta(days=1), time(0), zone).astimezone(UTC)
        return start, end


class NotifierStore:
    """Batch reads and writes of the notifier's tables (and reads of the linker's links)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def processed(
        self, conn: AsyncConnection, event_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """The ids among `event_ids` whose processing already finished."""
        if not event_ids:
            return set()
        rows = await conn.execute(
            text("SELECT event_id FROM processed_events WHERE event_id = ANY(:ids)"),
            {"ids": list(event_ids)},
        )
        return {row[0] for row in rows}

    async def record_activity(self, conn: AsyncConnection, rows: Iterable[ActivityRow]) -> None:
        """Record platform events for the daily summary (idempotent per event id)."""
        params = [row.__dict__ for row in rows]
        if not params:
            return
        stmt = text(
            """
            INSERT INTO activity (event_id, user_id, type, occurred_at, platform, likes, comments,
                                  details)
            VALUES (:event_id, :user_id, :type, :occurred_at, :platform, :likes, :comments,
                    :details)
            ON CONFLICT (event_id) DO NOTHING
            """
        ).bindparams(bindparam("details", type_=JSONB()))
        await conn.execute(stmt, params)

    async def links(self, conn: AsyncConnection, user_ids: Iterable[str]) -> dict[str, Link]:
        """The links of these users (read from the linker's table)."""
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        rows = await conn.execute(
            text(
                "SELECT user_id, chat_id, enabled, muted_types, language "
                "FROM telegram_links WHERE user_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        return {
            r.user_id: Link(r.user_id, r.chat_id, r.enabled, tuple(r.muted_types or ()), r.language)
            for r in rows
        }

    async def daily_reports(
        self, conn: AsyncConnection, windows: Sequence[SummaryWindow]
    ) -> dict[str, DailyReport]:
        """Aggregate each window's posts, outcomes and engagement (one query for the batch)."""
        if not windows:
            return {}
        bounds = [w.bounds() for w in windows]
        rows = await conn.execute(
            text(
                """
                SELECT v.key, a.type, coalesce(a.platform, '') AS platform, count(*) AS n,
                       coalesce(sum(a.likes + a.comments), 0) AS engagement
                FROM unnest(CAST(:keys AS text[]), CAST(:users AS text[]),
                            CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
                     AS v(key, user_id, start_at, end_at)
                JOIN activity a ON a.user_id = v.user_id
                               AND a.occurred_at >= v.start_at AND a.occurred_at < v.end_at
                WHERE a.type IN ('post_success', 'post_failure')
                GROUP BY 1, 2, 3
                """
            ),
            {
                "keys": [w.key for w in windows],
                "users": [w.user_id for w in windows],
                "starts": [b[0] for b in bounds],
                "ends": [b[1] for b in bounds],
            },
        )
        totals: dict[str, dict[str, list[int]]] = {w.key: {} for w in windows}
        for key, type_, platform, n, engagement in rows:
            # per platform: [successes, failures, engagement of successes]
            entry = totals[key].setdefault(platform_key(platform) if platform else "", [0, 0, 0])
            if type_ == EventType.POST_SUCCESS:
                entry[0] += n
                entry[2] += int(engagement)
            else:
                entry[1] += n
        reports = {}
        for window in windows:
            per_platform = totals[window.key]
            ok = sum(v[0] for v in per_platform.values())
            failed = sum(v[1] for v in per_platform.values())
            reports[window.key] = DailyReport(
                day=window.day,
                total_posts=ok + failed,
                successful_posts=ok,
                failed_posts=failed,
                total_engagement=sum(v[2] for v in per_platform.values()),
                platforms={
                    name or "other": PlatformTotals(posts=v[0] + v[1], engagement=v[2])
                    for name, v in per_platform.items()
                },
            )
        return reports

    async def begin_deliveries(
        self, conn: AsyncConnection, intents: Sequence[DeliveryIntent]
    ) -> dict[str, DeliveryRow]:
        """Create the delivery rows, or resume unfinished ones (one statement); by dedupe key.

        A row already in a final state keeps it, which tells the caller the event is a duplicate.
        """
        if not intents:
            return {}
        table = SQLModel.metadata.tables[Delivery.__tablename__]
        now = func.now()
        stmt = insert(table).values(
            [{**i.__dict__, "attempts": 0, "created_at": now, "updated_at": now} for i in intents]
        )
        is_final = table.c.status.in_(FINAL_STATUSES)
        upsert = stmt.on_conflict_do_update(
            constraint="uq_deliveries_dedupe_key",
            set_={
                "status": case((is_final, table.c.status), else_=stmt.excluded.status),
                "chat_ref": case((is_final, table.c.chat_ref), else_=stmt.excluded.chat_ref),
                "updated_at": now,
            },
        ).returning(table.c.id, table.c.dedupe_key, table.c.status, table.c.attempts)
        rows = await conn.execute(upsert)
        return {r.dedupe_key: DeliveryRow(r.id, r.dedupe_key, r.status, r.attempts) for r in rows}

    async def finish(self, results: Sequence[DeliveryResult]) -> None:
        """Write the outcomes of sends, and mark finished events processed (one transaction)."""
        if not results:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    """
                    UPDATE deliveries SET status = CAST(:status AS varchar),
                        telegram_message_id = coalesce(
                            CAST(:telegram_message_id AS bigint), telegram_message_id),
                        error = :error, attempts = :attempts, updated_at = now(),
                        sent_at = CASE WHEN CAST(:status AS varchar) = 'sent'
                                       THEN now() ELSE sent_at END
                    WHERE id = :delivery_id
                    """
                ),
                [r.__dict__ for r in results],
            )
            await self.mark_processed(conn, [r for r in results if r.final])

    async def mark_processed(
        self, conn: AsyncConnection, results: Sequence[DeliveryResult]
    ) -> None:
        """Insert the inbox rows of finished events."""
        if results:
            await conn.execute(
                text(
                    "INSERT INTO processed_events (event_id, type, user_id, received_at) "
                    "VALUES (:event_id, :event_type, :user_id, now()) ON CONFLICT DO NOTHING"
                ),
                [
                    {"event_id": r.event_id, "event_type": r.event_type, "user_id": r.user_id}
                    for r in results
                ],
            )
