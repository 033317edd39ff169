"""The daily summary job of one scheduler replica: `DailySummaryJob`, made of its rooms.

Exactly once, in three steps (see README.md):
1. record (`tick.py`): due schedule rows are locked (`FOR UPDATE SKIP LOCKED`), their runs
   inserted with `ON CONFLICT DO NOTHING` on (user_id, summary_date, kind), and the rows
   advanced, in one transaction;
2. publish (`publishing.py`): unpublished runs are locked the same way, published with broker
   confirms, and marked `published_at` in that transaction; failures stay pending and are
   retried next tick;
3. a run published twice (a crash between the confirm and the commit) carries the same
   deterministic event id, which the notifier's inbox deduplicates.

The admin API's actions are `admin.py`; each run's `job_runs` row `runs.py`. The job reaches
the outside only through its ports (`ports.py`: store, broker; `clock.py`).
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

from services.scheduler.admin import Admin, ResendOutcome
from services.scheduler.clock import Clock
from services.scheduler.config import JobConfig
from services.scheduler.ports import JobRunRecord, SchedulerStore, TriggerPublisher
from services.scheduler.publishing import Publishing
from services.scheduler.runs import JobRuns
from services.scheduler.tick import Ticks


class DailySummaryJob:
    """The `telegram_daily_summary` job of one scheduler replica."""

    def __init__(
        self,
        store: SchedulerStore,
        publisher: TriggerPublisher,
        clock: Clock,
        config: JobConfig | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.config = config or JobConfig()
        runs = JobRuns(store, clock)
        publishing = Publishing(store, publisher, clock, self.config, runs)
        self._ticks = Ticks(store, clock, self.config, runs, publishing)
        self._admin = Admin(store, clock, self.config, runs, publishing)

    @property
    def running(self) -> bool:
        """Whether `run_forever` is running."""
        return self._ticks.running

    # -- the loop (tick.py) -----------------------------------------------------------------
    async def run_forever(self, stop: asyncio.Event) -> None:
        """Tick every `config.tick` until `stop` is set; a tick the database fails is retried."""
        await self._ticks.run_forever(stop)

    async def tick(self) -> JobRunRecord | None:
        """Reconcile, record what is due, publish what is pending; the job run if any work."""
        return await self._ticks.tick()

    async def sync(self, now: datetime) -> bool:
        """Reconcile `summary_schedules` with the links; False if another replica is doing it."""
        return await self._ticks.sync(now)

    # -- the admin API's actions (admin.py) -------------------------------------------------
    async def trigger_all(self) -> JobRunRecord:
        """Run the job now: every active user's trigger for their last complete local day."""
        return await self._admin.trigger_all()

    async def resend(self, user_id: str, day: date | None = None) -> ResendOutcome:
        """Deliberately resend one user's summary for one day, with a fresh event id."""
        return await self._admin.resend(user_id, day)

    async def status(self, recent: int = 10) -> dict[str, Any]:
        """The job as the status endpoint shows it."""
        return await self._admin.status(recent)

    async def history(
        self, job_id: str | None, page: int, page_size: int
    ) -> tuple[list[JobRunRecord], int]:
        """One page of job runs, newest first, and how many there are."""
        return await self._admin.history(job_id, page, page_size)
