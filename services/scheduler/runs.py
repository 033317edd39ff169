"""Job runs: one `job_runs` row per run of the job that does anything (a tick that records,
publishes or skips; a manual run; a resend), written on first need and finished with its
counts, timings and error."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from services.scheduler.clock import Clock
from services.scheduler.config import JOB_ID
from services.scheduler.ports import JobRunRecord, RunOutcome, SchedulerStore

log = logging.getLogger("services.scheduler")


@dataclass
class JobRun:
    """A job run being carried out; its `job_runs` row is written on first need."""

    trigger: str
    started_at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    emitted: int = 0
    failed: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def count(self, **counts: int) -> None:
        for key, value in counts.items():
            if value:
                self.details[key] = self.details.get(key, 0) + value

    def timed(self, key: str, since: float) -> None:
        """Keep how long a step took (seconds), once the run does anything."""
        if self.id is not None:
            self.details[key] = round(time.perf_counter() - since, 3)


class JobRuns:
    """Writes the `job_runs` rows of the job's runs."""

    def __init__(self, store: SchedulerStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def id_of(self, run: JobRun) -> int:
        """The run's row id, inserting the row on first need (once, whatever the lanes)."""
        async with run.lock:
            if run.id is None:
                async with self.store.begin() as tx:
                    run.id = await tx.start_job_run(
                        JOB_ID, run.trigger, run.started_at, run.details
                    )
        return run.id

    async def finish(self, run: JobRun, error: str | None = None) -> JobRunRecord:
        """Store the run's outcome; its row as it now is."""
        assert run.id is not None
        async with self.store.begin() as tx:
            outcome = RunOutcome(self.clock.now(), run.emitted, run.failed, error, run.details)
            return await tx.finish_job_run(run.id, outcome)

    async def abandon(self, run: JobRun, exc: BaseException) -> None:
        """Write the error into the run's row, if it has one; the exception propagates anyway."""
        if run.id is None:
            return
        try:
            await self.finish(run, error=f"{type(exc).__name__}: {exc}"[:2000])
        except (SQLAlchemyError, OSError):
            log.warning("could not record the failed job run", exc_info=True)
