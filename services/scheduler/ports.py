"""The daily summary job's ports: its store (one transaction at a time), the broker, the clock
(`clock.py`). PostgreSQL is `store.PostgresStore`, the broker `shared.publisher.EventPublisher`;
the unit tests give in-memory fakes of each (`tests/scheduler/fakes.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.scheduler.plan import DueRow, LinkSettings, NewRun, PendingRun, ScheduleEntry, SyncRow
from shared.contract import Event


class TriggerPublisher(Protocol):
    """The broker port (`shared.publisher.EventPublisher` satisfies it)."""

    @property
    def is_connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def publish(
        self, event: Event, *, mandatory: bool = True, headers: dict[str, Any] | None = None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a job run ended: what `finish_job_run` writes into its row."""

    finished_at: datetime
    emitted: int
    failed: int
    error: str | None
    details: dict[str, Any]


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


class SchedulerTx(Protocol):
    """The job's statements inside one transaction (committed when it ends, rolled back if the
    block raises). Rows a statement locks stay locked to other transactions until then."""

    # -- reconciling the schedule with the links ---------------------------------------------
    async def try_lock_sync(self) -> bool:
        """Take the sync lock for this transaction; False if another replica holds it."""

    async def differences(self) -> list[SyncRow]:
        """Users whose active link and schedule row disagree."""

    async def add_schedules(self, entries: Sequence[ScheduleEntry], now: datetime) -> None:
        """Insert schedule rows for newly seen users (a row another replica added wins)."""

    async def reschedule(
        self, changes: Sequence[tuple[ScheduleEntry, ScheduleEntry]], now: datetime
    ) -> None:
        """Replace (seen, new) schedule rows, each only if it is still as seen."""

    async def remove_schedules(self, user_ids: Sequence[str]) -> None:
        """Forget the schedules of users who no longer want summaries."""

    # -- firing due schedules ----------------------------------------------------------------
    async def claim_due(self, now: datetime, limit: int) -> list[DueRow]:
        """Lock up to `limit` due schedule rows no other transaction holds, earliest first."""

    async def advance(self, entries: Sequence[ScheduleEntry], now: datetime) -> None:
        """Move schedule rows to their next trigger (with the settings it was computed with)."""

    async def record_scheduled(
        self, runs: Sequence[NewRun], job_run_id: int | None, now: datetime
    ) -> int:
        """Record scheduled runs, leaving those already recorded (user, day) alone; how many
        are new."""

    async def record_resend(self, run: NewRun, job_run_id: int, now: datetime) -> int:
        """Record a deliberate resend (replacing an earlier resend of the same day); its id."""

    # -- publishing --------------------------------------------------------------------------
    async def claim_unpublished(
        self, oldest: datetime, limit: int, ids: Sequence[int] | None = None
    ) -> list[PendingRun]:
        """Lock up to `limit` unpublished runs due after `oldest` (of `ids`, when given) that no
        other transaction holds, earliest first."""

    async def mark_published(self, ids: Sequence[int], now: datetime) -> None:
        """Record that the broker confirmed these runs' triggers."""

    async def mark_failed(self, failures: Sequence[tuple[int, str]]) -> None:
        """Count a failed attempt and keep its error, per run."""

    async def unpublished_count(self, oldest: datetime) -> int:
        """How many recorded triggers still wait for a broker confirm (due after `oldest`)."""

    # -- the links (owned by the linker; read only) --------------------------------------------
    async def active_links(self) -> list[LinkSettings]:
        """Every user who should receive the daily summary."""

    async def link(self, user_id: str) -> LinkSettings | None:
        """One user's link settings, whatever its state; None if the user never linked."""

    # -- job runs and status -----------------------------------------------------------------
    async def start_job_run(
        self, job_id: str, trigger: str, started_at: datetime, details: dict[str, Any]
    ) -> int:
        """Insert a job run; its id."""

    async def finish_job_run(self, run_id: int, outcome: RunOutcome) -> JobRunRecord:
        """Store a job run's outcome; the updated row."""

    async def job_runs(self, job_id: str | None, limit: int, offset: int = 0) -> list[JobRunRecord]:
        """Job runs (of `job_id`, or all), newest first."""

    async def count_job_runs(self, job_id: str | None) -> int:
        """How many job runs there are (of `job_id`, or all)."""

    async def schedule_overview(self) -> tuple[datetime | None, int]:
        """The next due instant of any user, and how many users are scheduled."""


class SchedulerStore(Protocol):
    """Opens the job's transactions."""

    def begin(self) -> AbstractAsyncContextManager[SchedulerTx]:
        """One transaction: committed when the block ends, rolled back if it raises."""
