"""The admin API's actions on the job: run it now for everyone, resend one user's summary,
the job's status and its history."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.common.logging import log_context
from services.scheduler import metrics
from services.scheduler.config import JOB_ID, JOB_NAME, JOB_TRIGGER
from services.scheduler.plan import NewRun, plan_resend, plan_trigger_all
from services.scheduler.ports import JobRunRecord
from services.scheduler.publishing import JobParts
from services.scheduler.runs import JobRun

log = logging.getLogger("services.scheduler")


class UnknownUser(LookupError):
    """A resend for a user who has no Telegram link."""


@dataclass(frozen=True)
class ResendOutcome:
    """What a deliberate resend did."""

    job_run: JobRunRecord
    run: NewRun
    published: bool


class Admin(JobParts):
    """What an administrator can do with the job."""

    async def trigger_all(self) -> JobRunRecord:
        """Run the job now: every active user's trigger for their last complete local day.

        A user whose trigger for that day was already recorded gets nothing new (that is what
        `resend` is for); the others get it now instead of at their summary time.
        """
        now = self.clock.now()
        started = time.perf_counter()
        run = JobRun("manual", now, {"instance": self.config.instance})
        with log_context(job_id=JOB_ID):
            try:
                await self.runs.id_of(run)
                async with self.store.begin() as tx:
                    links = await tx.active_links()
                runs = plan_trigger_all(links, now)
                recorded = 0
                for start in range(0, len(runs), self.config.batch_size):
                    async with self.store.begin() as tx:
                        chunk = runs[start : start + self.config.batch_size]
                        recorded += await tx.record_scheduled(chunk, run.id, now)
                metrics.TRIGGERS_RECORDED.labels("scheduled").inc(recorded)
                run.count(
                    users=len(links), recorded=recorded, already_recorded=len(runs) - recorded
                )
                run.timed("record_seconds", started)
                step = time.perf_counter()
                await self.publishing.publish_pending(now, run)
                run.timed("publish_seconds", step)
            except Exception as exc:
                await self.runs.abandon(run, exc)
                raise
            log.info("daily summary job triggered by hand", extra=run.details)
            return await self.runs.finish(run)

    async def resend(self, user_id: str, day: date | None = None) -> ResendOutcome:
        """Deliberately resend one user's summary for one day, with a fresh event id."""
        now = self.clock.now()
        async with self.store.begin() as tx:
            link = await tx.link(user_id)
        if link is None:
            raise UnknownUser(user_id)
        new = plan_resend(link, day, now, uuid.uuid4())
        run = JobRun(
            "resend",
            now,
            {
                "instance": self.config.instance,
                "user_id": new.user_id,
                "date": new.summary_date.isoformat(),
                "event_id": str(new.event_id),
            },
        )
        with log_context(job_id=JOB_ID, user_id=user_id, event_id=str(new.event_id)):
            try:
                run_id = await self.runs.id_of(run)
                async with self.store.begin() as tx:
                    row_id = await tx.record_resend(new, run_id, now)
                metrics.TRIGGERS_RECORDED.labels("resend").inc()
                await self.publishing.publish_pending(now, run, only=[row_id])
            except Exception as exc:
                await self.runs.abandon(run, exc)
                raise
            log.info("daily summary resent by hand", extra={"date": str(new.summary_date)})
            finished = await self.runs.finish(run)
        return ResendOutcome(finished, new, published=finished.emitted > 0)

    async def status(self, recent: int = 10) -> dict[str, Any]:
        """The job as the status endpoint shows it."""
        now = self.clock.now()
        async with self.store.begin() as tx:
            next_due, scheduled = await tx.schedule_overview()
            unpublished = await tx.unpublished_count(now - self.config.catch_up)
            runs = await tx.job_runs(JOB_ID, recent)
        return {
            "id": JOB_ID,
            "name": JOB_NAME,
            "trigger": JOB_TRIGGER,
            "next_run_time": next_due.isoformat() if next_due else None,
            "scheduled_users": scheduled,
            "unpublished_triggers": unpublished,
            "last_runs": [r.as_json() for r in runs],
        }

    async def history(
        self, job_id: str | None, page: int, page_size: int
    ) -> tuple[list[JobRunRecord], int]:
        """One page of job runs, newest first, and how many there are."""
        async with self.store.begin() as tx:
            runs = await tx.job_runs(job_id, page_size, (page - 1) * page_size)
            total = await tx.count_job_runs(job_id)
        return runs, total
