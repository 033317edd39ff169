"""`PostgresStore`: the job's store port (`ports.SchedulerStore`) over PostgreSQL: its schedule,
summary runs and job runs, and read-only access to the links.

Bulk statements (`queries.py`) take a batch of thousands of rows in one round trip. Every
method runs inside the caller's transaction (`PostgresStore.begin()`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.scheduler import queries
from services.scheduler.plan import (
    DueRow,
    LinkSettings,
    NewRun,
    PendingRun,
    ScheduleEntry,
    SyncRow,
)
from services.scheduler.ports import JobRunRecord, RunOutcome


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


class PostgresStore:
    """Opens transactions on the scheduler's tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[PostgresTx]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self.engine.begin() as conn:
            yield PostgresTx(conn)


class PostgresTx:
    """The job's statements (`ports.SchedulerTx`), inside one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # -- reconciling the schedule with the links ---------------------------------------------

    async def try_lock_sync(self) -> bool:
        """Take the sync lock for this transaction; False if another replica holds it."""
        result = await self.conn.execute(queries.TRY_LOCK_SYNC, {"key": queries.SYNC_LOCK_KEY})
        return bool(result.scalar_one())

    async def differences(self) -> list[SyncRow]:
        """Users whose active link and schedule row disagree (one merge of two primary keys)."""
        rows = (await self.conn.execute(queries.SYNC)).all()
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
                queries.INSERT_SCHEDULES, {"now": now, "rows": _schedule_rows(entries)}
            )

    async def reschedule(
        self, changes: Sequence[tuple[ScheduleEntry, ScheduleEntry]], now: datetime
    ) -> None:
        """Replace (seen, new) schedule rows, each only if it is still as seen."""
        if changes:
            rows = _schedule_rows([after for _, after in changes], [b.due_at for b, _ in changes])
            await self.conn.execute(queries.RESCHEDULE, {"now": now, "rows": rows})

    async def remove_schedules(self, user_ids: Sequence[str]) -> None:
        """Forget the schedules of users who no longer want summaries."""
        if user_ids:
            await self.conn.execute(queries.DELETE_SCHEDULES, {"users": list(user_ids)})

    # -- firing due schedules ----------------------------------------------------------------

    async def claim_due(self, now: datetime, limit: int) -> list[DueRow]:
        """Lock up to `limit` due schedule rows no other replica holds, earliest first."""
        rows = (await self.conn.execute(queries.CLAIM_DUE, {"now": now, "limit": limit})).all()
        return [
            DueRow(_entry(row[:5]), LinkSettings(*row[5:]) if row[5] is not None else None)
            for row in rows
        ]

    async def advance(self, entries: Sequence[ScheduleEntry], now: datetime) -> None:
        """Move schedule rows to their next trigger (with the settings it was computed with)."""
        if entries:
            await self.conn.execute(queries.ADVANCE, {"now": now, "rows": _schedule_rows(entries)})

    async def record_scheduled(
        self, runs: Sequence[NewRun], job_run_id: int | None, now: datetime
    ) -> int:
        """Record scheduled runs, leaving those already recorded alone; how many are new."""
        if not runs:
            return 0
        result = await self.conn.execute(
            queries.RECORD_SCHEDULED,
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
            queries.RECORD_RESEND,
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
            rows = (await self.conn.execute(queries.CLAIM_UNPUBLISHED, params)).all()
        else:
            params["ids"] = list(ids)
            rows = (await self.conn.execute(queries.CLAIM_UNPUBLISHED_BY_ID, params)).all()
        return [PendingRun(*row) for row in rows]

    async def mark_published(self, ids: Sequence[int], now: datetime) -> None:
        """Record that the broker confirmed these runs' triggers."""
        if ids:
            await self.conn.execute(queries.MARK_PUBLISHED, {"ids": list(ids), "now": now})

    async def mark_failed(self, failures: Sequence[tuple[int, str]]) -> None:
        """Count a failed attempt and keep its error, per run."""
        if failures:
            await self.conn.execute(
                queries.MARK_FAILED,
                {"ids": [i for i, _ in failures], "errors": [e[:1000] for _, e in failures]},
            )

    # -- the links (owned by the linker; read only) --------------------------------------------

    async def active_links(self) -> list[LinkSettings]:
        """Every user who should receive the daily summary."""
        rows = await self.conn.execute(queries.ACTIVE_LINKS)
        return [LinkSettings(*row) for row in rows.all()]

    async def link(self, user_id: str) -> LinkSettings | None:
        """One user's link settings, whatever its state; None if the user never linked."""
        row = (await self.conn.execute(queries.LINK, {"user_id": user_id})).first()
        return LinkSettings(*row) if row is not None else None

    # -- job runs and status -----------------------------------------------------------------

    async def start_job_run(
        self, job_id: str, trigger: str, started_at: datetime, details: dict[str, Any]
    ) -> int:
        """Insert a job run; its id."""
        result = await self.conn.execute(
            queries.START_JOB_RUN,
            {
                "job_id": job_id,
                "trigger": trigger,
                "started_at": started_at,
                "details": _json(details),
            },
        )
        return int(result.scalar_one())

    async def finish_job_run(self, run_id: int, outcome: RunOutcome) -> JobRunRecord:
        """Store a job run's outcome; the updated row."""
        result = await self.conn.execute(
            queries.FINISH_JOB_RUN,
            {"id": run_id, **asdict(outcome), "details": _json(outcome.details)},
        )
        return _job_run(result.one())

    async def job_runs(self, job_id: str | None, limit: int, offset: int = 0) -> list[JobRunRecord]:
        """Job runs, newest first."""
        rows = await self.conn.execute(
            queries.JOB_RUNS,
            {"job_id": job_id, "limit": limit, "offset": offset},
        )
        return [_job_run(row) for row in rows.all()]

    async def count_job_runs(self, job_id: str | None) -> int:
        """How many job runs there are."""
        result = await self.conn.execute(queries.COUNT_JOB_RUNS, {"job_id": job_id})
        return int(result.scalar_one())

    async def schedule_overview(self) -> tuple[datetime | None, int]:
        """The next due instant of any user, and how many users are scheduled."""
        row = (await self.conn.execute(queries.SCHEDULE_OVERVIEW)).one()
        return row[0], int(row[1])

    async def unpublished_count(self, oldest: datetime) -> int:
        """How many recorded triggers still wait for a broker confirm (within the grace)."""
        result = await self.conn.execute(queries.UNPUBLISHED_COUNT, {"oldest": oldest})
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
