"""The scheduler's SQL: its schedule, summary runs and job runs; read-only access to the links.

Bulk statements take whole columns as arrays (`unnest`), so a batch of thousands of rows is one
round trip. Every method runs inside the caller's transaction (`SchedulerStore.begin()`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.scheduler.plan import (
    DueRow,
    LinkSettings,
    NewRun,
    PendingRun,
    ScheduleEntry,
    SyncRow,
)

SYNC_LOCK_KEY = 7305150205
"""Advisory lock taken by the replica that reconciles the schedule with the links this tick."""

# A link that should receive the daily summary is enabled, has a chat and has not muted
# `daily_summary`; the queries below spell that condition out (the linker owns these columns).


@dataclass(frozen=True, slots=True)
class JobRunRecord:
    """A row of `job_runs`."""

    id: int
    job_id: str
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    emitted: int
    failed: int
    error: str | None
    details: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The run as the admin API shows it."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "trigger": self.trigger,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "emitted": self.emitted,
            "failed": self.failed,
            "error": self.error,
            "details": self.details,
        }


def _entry(row: Sequence[Any]) -> ScheduleEntry:
    """A schedule entry from five columns in table order."""
    user_id, timezone, summary_time, summary_date, due_at = row
    return ScheduleEntry(user_id, timezone, summary_time, summary_date, due_at)


def _job_run(row: Row[Any]) -> JobRunRecord:
    m = row._mapping
    return JobRunRecord(
        id=m["id"],
        job_id=m["job_id"],
        trigger=m["trigger"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        emitted=m["emitted"],
        failed=m["failed"],
        error=m["error"],
        details=dict(m["details"] or {}),
    )


_SYNC = text("""
    SELECT l.user_id AS l_user_id, l.timezone AS l_timezone, l.summary_time AS l_summary_time,
           s.user_id AS s_user_id, s.timezone AS s_timezone, s.summary_time AS s_summary_time,
           s.summary_date AS s_summary_date, s.due_at AS s_due_at
    FROM (SELECT user_id, timezone, summary_time FROM telegram_links l WHERE
          l.enabled AND l.chat_id IS NOT NULL AND NOT ('daily_summary' = ANY(l.muted_types))) l
    FULL JOIN summary_schedules s ON s.user_id = l.user_id
    WHERE l.user_id IS NULL OR s.user_id IS NULL
       OR l.timezone <> s.timezone OR l.summary_time <> s.summary_time
""")

# Bulk rows travel as one JSON array (`json_to_recordset`): for thousands of rows that is several
# times cheaper to encode than one typed array parameter per column.
_INSERT_SCHEDULES = text("""
    INSERT INTO summary_schedules
        (user_id, timezone, summary_time, summary_date, due_at, updated_at)
    SELECT x.user_id, x.timezone, x.summary_time, x.summary_date, x.due_at, :now
    FROM json_to_recordset(CAST(:rows AS json)) AS x(
        user_id text, timezone text, summary_time time, summary_date date, due_at timestamptz,
        seen_due_at timestamptz)
    ON CONFLICT (user_id) DO NOTHING
""")

# Only if the row is still what the sync read: a replica that fired it meanwhile wins.
_RESCHEDULE = text("""
    UPDATE summary_schedules s
    SET timezone = x.timezone, summary_time = x.summary_time, summary_date = x.summary_date,
        due_at = x.due_at, updated_at = :now
    FROM json_to_recordset(CAST(:rows AS json)) AS x(
        user_id text, timezone text, summary_time time, summary_date date, due_at timestamptz,
        seen_due_at timestamptz)
    WHERE s.user_id = x.user_id AND s.due_at = x.seen_due_at
""")

_DELETE_SCHEDULES = text("""
    DELETE FROM summary_schedules WHERE user_id = ANY(CAST(:users AS text[]))
""")

_CLAIM_DUE = text("""
    SELECT s.user_id, s.timezone, s.summary_time, s.summary_date, s.due_at,
           l.user_id AS link_user_id, l.timezone AS link_timezone,
           l.summary_time AS link_summary_time
    FROM summary_schedules s
    LEFT JOIN telegram_links l ON l.user_id = s.user_id
        AND l.enabled AND l.chat_id IS NOT NULL AND NOT ('daily_summary' = ANY(l.muted_types))
    WHERE s.due_at <= :now
    ORDER BY s.due_at
    LIMIT :limit
    FOR UPDATE OF s SKIP LOCKED
""")

_ADVANCE = text("""
    UPDATE summary_schedules s
    SET timezone = x.timezone, summary_time = x.summary_time, summary_date = x.summary_date,
        due_at = x.due_at, updated_at = :now
    FROM json_to_recordset(CAST(:rows AS json)) AS x(
        user_id text, timezone text, summary_time time, summary_date date, due_at timestamptz,
        seen_due_at timestamptz)
    WHERE s.user_id = x.user_id
""")

_RECORD_SCHEDULED = text("""
    INSERT INTO summary_runs
        (user_id, summary_date, kind, event_id, due_at, created_at, attempts, job_run_id, timezone)
    SELECT x.user_id, x.summary_date, 'scheduled', x.event_id, x.due_at, :now, 0, :job_run_id,
        x.timezone
    FROM json_to_recordset(CAST(:rows AS json)) AS x(
        user_id text, summary_date date, event_id uuid, due_at timestamptz, timezone text)
    ON CONFLICT (user_id, summary_date, kind) DO NOTHING
    RETURNING id
""")

# A resend of the same (user, date) replaces the previous resend's row: the unique key allows one
# row per kind, and the job run keeps each request's event id.
_RECORD_RESEND = text("""
    INSERT INTO summary_runs
        (user_id, summary_date, kind, event_id, due_at, created_at, attempts, job_run_id, timezone)
    VALUES (:user_id, :summary_date, 'resend', :event_id, :now, :now, 0, :job_run_id, :zone)
    ON CONFLICT (user_id, summary_date, kind) DO UPDATE
    SET event_id = EXCLUDED.event_id, due_at = EXCLUDED.due_at, created_at = EXCLUDED.created_at,
        published_at = NULL, attempts = 0, last_error = NULL,
        job_run_id = EXCLUDED.job_run_id, timezone = EXCLUDED.timezone
    RETURNING id
""")

_CLAIM_UNPUBLISHED = text("""
    SELECT id, user_id, summary_date, kind, event_id, due_at, timezone
    FROM summary_runs
    WHERE published_at IS NULL AND due_at > :oldest
    ORDER BY due_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")

_CLAIM_UNPUBLISHED_BY_ID = text("""
    SELECT id, user_id, summary_date, kind, event_id, due_at, timezone
    FROM summary_runs
    WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL AND due_at > :oldest
    ORDER BY due_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")

_MARK_PUBLISHED = text("""
    UPDATE summary_runs
    SET published_at = :now, attempts = attempts + 1, last_error = NULL
    WHERE id = ANY(CAST(:ids AS bigint[]))
""")

_MARK_FAILED = text("""
    UPDATE summary_runs r
    SET attempts = r.attempts + 1, last_error = x.err
    FROM unnest(CAST(:ids AS bigint[]), CAST(:errors AS text[])) AS x(id, err)
    WHERE r.id = x.id
""")

_ACTIVE_LINKS = text("""
    SELECT user_id, timezone, summary_time FROM telegram_links l
    WHERE l.enabled AND l.chat_id IS NOT NULL AND NOT ('daily_summary' = ANY(l.muted_types))
""")

_FINISH_JOB_RUN = text("""
    UPDATE job_runs
    SET finished_at = :finished_at, emitted = :emitted, failed = :failed, error = :error,
        details = CAST(:details AS jsonb)
    WHERE id = :id
    RETURNING id, job_id, trigger, started_at, finished_at, emitted, failed, error, details
""")

_JOB_RUNS = text("""
    SELECT id, job_id, trigger, started_at, finished_at, emitted, failed, error, details
    FROM job_runs
    WHERE CAST(:job_id AS text) IS NULL OR job_id = :job_id
    ORDER BY started_at DESC, id DESC
    LIMIT :limit OFFSET :offset
""")


class SchedulerStore:
    """Opens transactions on the scheduler's tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[SchedulerTx]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self.engine.begin() as conn:
            yield SchedulerTx(conn)


class SchedulerTx:
    """The scheduler's statements, inside one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # -- reconciling the schedule with the links ---------------------------------------------

    async def try_lock_sync(self) -> bool:
        """Take the sync lock for this transaction; False if another replica holds it."""
        result = await self.conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SYNC_LOCK_KEY}
        )
        return bool(result.scalar_one())

    async def differences(self) -> list[SyncRow]:
        """Users whose active link and schedule row disagree (one merge of two primary keys)."""
        rows = (await self.conn.execute(_SYNC)).all()
        out = []
        for row in rows:
            m = row._mapping
            link = (
                LinkSettings(m["l_user_id"], m["l_timezone"], m["l_summary_time"])
                if m["l_user_id"] is not None
                else None
            )
            schedule = _entry(row[3:8]) if m["s_user_id"] is not None else None
            out.append(SyncRow(link, schedule))
        return out

    async def add_schedules(self, entries: Sequence[ScheduleEntry], now: datetime) -> None:
        """Insert schedule rows for newly seen users (a row another replica added wins)."""
        if entries:
            await self.conn.execute(
                _INSERT_SCHEDULES, {"now": now, "rows": _schedule_rows(entries)}
            )

    async def reschedule(
        self, changes: Sequence[tuple[ScheduleEntry, ScheduleEntry]], now: datetime
    ) -> None:
        """Replace (seen, new) schedule rows, each only if it is still as seen."""
        if changes:
            rows = _schedule_rows([after for _, after in changes], [b.due_at for b, _ in changes])
            await self.conn.execute(_RESCHEDULE, {"now": now, "rows": rows})

    async def remove_schedules(self, user_ids: Sequence[str]) -> None:
        """Forget the schedules of users who no longer want summaries."""
        if user_ids:
            await self.conn.execute(_DELETE_SCHEDULES, {"users": list(user_ids)})

    # -- firing due schedules ----------------------------------------------------------------

    async def claim_due(self, now: datetime, limit: int) -> list[DueRow]:
        """Lock up to `limit` due schedule rows no other replica holds, earliest first."""
        rows = (await self.conn.execute(_CLAIM_DUE, {"now": now, "limit": limit})).all()
        return [
            DueRow(_entry(row[:5]), LinkSettings(*row[5:]) if row[5] is not None else None)
            for row in rows
        ]

    async def advance(self, entries: Sequence[ScheduleEntry], now: datetime) -> None:
        """Move schedule rows to their next trigger (with the settings it was computed with)."""
        if entries:
            await self.conn.execute(_ADVANCE, {"now": now, "rows": _schedule_rows(entries)})

    async def record_scheduled(
        self, runs: Sequence[NewRun], job_run_id: int | None, now: datetime
    ) -> int:
        """Record scheduled runs, leaving those already recorded alone; how many are new."""
        if not runs:
            return 0
        result = await self.conn.execute(
            _RECORD_SCHEDULED,
            {
                "now": now,
                "job_run_id": job_run_id,
                "rows": json.dumps(
                    [
                        {
                            "user_id": r.user_id,
                            "summary_date": r.summary_date.isoformat(),
                            "event_id": str(r.event_id),
                            "due_at": r.due_at.isoformat(),
                            "timezone": r.timezone,
                        }
                        for r in runs
                    ]
                ),
            },
        )
        return len(result.all())

    async def record_resend(self, run: NewRun, job_run_id: int, now: datetime) -> int:
        """Record a deliberate resend (replacing an earlier resend of the same day); its id."""
        result = await self.conn.execute(
            _RECORD_RESEND,
            {
                "user_id": run.user_id,
                "summary_date": run.summary_date,
                "event_id": run.event_id,
                "now": now,
                "job_run_id": job_run_id,
                "zone": run.timezone,
            },
        )
        return int(result.scalar_one())

    # -- publishing --------------------------------------------------------------------------

    async def claim_unpublished(
        self, oldest: datetime, limit: int, ids: Sequence[int] | None = None
    ) -> list[PendingRun]:
        """Lock up to `limit` unpublished runs due after `oldest` that no other replica holds."""
        params: dict[str, Any] = {"oldest": oldest, "limit": limit}
        if ids is None:
            rows = (await self.conn.execute(_CLAIM_UNPUBLISHED, params)).all()
        else:
            params["ids"] = list(ids)
            rows = (await self.conn.execute(_CLAIM_UNPUBLISHED_BY_ID, params)).all()
        return [PendingRun(*row) for row in rows]

    async def mark_published(self, ids: Sequence[int], now: datetime) -> None:
        """Record that the broker confirmed these runs' triggers."""
        if ids:
            await self.conn.execute(_MARK_PUBLISHED, {"ids": list(ids), "now": now})

    async def mark_failed(self, failures: Sequence[tuple[int, str]]) -> None:
        """Count a failed attempt and keep its error, per run."""
        if failures:
            await self.conn.execute(
                _MARK_FAILED,
                {"ids": [i for i, _ in failures], "errors": [e[:1000] for _, e in failures]},
            )

    # -- the links (owned by the linker; read only) --------------------------------------------

    async def active_links(self) -> list[LinkSettings]:
        """Every user who should receive the daily summary."""
        rows = await self.conn.execute(_ACTIVE_LINKS)
        return [LinkSettings(*row) for row in rows.all()]

    async def link(self, user_id: str) -> LinkSettings | None:
        """One user's link settings, whatever its state; None if the user never linked."""
        row = (
            await self.conn.execute(
                text(
                    "SELECT user_id, timezone, summary_time FROM telegram_links "
                    "WHERE user_id = :user_id"
                ),
                {"user_id": user_id},
            )
        ).first()
        return LinkSettings(*row) if row is not None else None

    # -- job runs and status -----------------------------------------------------------------

    async def start_job_run(
        self, job_id: str, trigger: str, started_at: datetime, details: dict[str, Any]
    ) -> int:
        """Insert a job run; its id."""
        result = await self.conn.execute(
            text(
                "INSERT INTO job_runs (job_id, trigger, started_at, emitted, failed, details) "
                "VALUES (:job_id, :trigger, :started_at, 0, 0, CAST(:details AS jsonb)) "
                "RETURNING id"
            ),
            {
                "job_id": job_id,
                "trigger": trigger,
                "started_at": started_at,
                "details": _json(details),
            },
        )
        return int(result.scalar_one())

    async def finish_job_run(
        self,
        run_id: int,
        *,
        finished_at: datetime,
        emitted: int,
        failed: int,
        error: str | None,
        details: dict[str, Any],
    ) -> JobRunRecord:
        """Store a job run's outcome; the updated row."""
        result = await self.conn.execute(
            _FINISH_JOB_RUN,
            {
                "id": run_id,
                "finished_at": finished_at,
                "emitted": emitted,
                "failed": failed,
                "error": error,
                "details": _json(details),
            },
        )
        return _job_run(result.one())

    async def job_runs(self, job_id: str | None, limit: int, offset: int = 0) -> list[JobRunRecord]:
        """Job runs, newest first."""
        rows = await self.conn.execute(
            _JOB_RUNS,
            {"job_id": job_id, "limit": limit, "offset": offset},
        )
        return [_job_run(row) for row in rows.all()]

    async def count_job_runs(self, job_id: str | None) -> int:
        """How many job runs there are."""
        result = await self.conn.execute(
            text(
                "SELECT count(*) FROM job_runs "
                "WHERE CAST(:job_id AS text) IS NULL OR job_id = :job_id"
            ),
            {"job_id": job_id},
        )
        return int(result.scalar_one())

    async def schedule_overview(self) -> tuple[datetime | None, int]:
        """The next due instant of any user, and how many users are scheduled."""
        row = (
            await self.conn.execute(text("SELECT min(due_at), count(*) FROM summary_schedules"))
        ).one()
        return row[0], int(row[1])

    async def unpublished_count(self, oldest: datetime) -> int:
        """How many recorded triggers still wait for a broker confirm (within the grace)."""
        result = await self.conn.execute(
            text("SELECT count(*) FROM summary_runs WHERE published_at IS NULL AND due_at > :o"),
            {"o": oldest},
        )
        return int(result.scalar_one())


def _schedule_rows(
    entries: Sequence[ScheduleEntry], seen_due: Sequence[datetime] | None = None
) -> str:
    return json.dumps(
        [
            {
                "user_id": e.user_id,
                "timezone": e.timezone,
                "summary_time": e.summary_time.isoformat(),
                "summary_date": e.summary_date.isoformat(),
                "due_at": e.due_at.isoformat(),
                "seen_due_at": seen_due[i].isoformat() if seen_due is not None else None,
            }
            for i, e in enumerate(entries)
        ]
    )


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, default=str)
