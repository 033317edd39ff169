"""The tick: every `JobConfig.tick` each replica reconciles the schedule with the links, records
the triggers that are due, then publishes what is pending (`publishing.py`).

Recording: due schedule rows are locked (`FOR UPDATE SKIP LOCKED`), their runs inserted with
`ON CONFLICT DO NOTHING` on (user_id, summary_date, kind), and the rows advanced to their next
trigger, in one transaction; a trigger due longer ago than the catch-up grace is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from services.common.logging import log_context
from services.scheduler import metrics
from services.scheduler.config import JOB_ID
from services.scheduler.plan import plan_due, plan_sync
from services.scheduler.ports import JobRunRecord
from services.scheduler.publishing import JobParts, in_lanes
from services.scheduler.runs import JobRun

log = logging.getLogger("services.scheduler")


@dataclass
class Ticks(JobParts):
    """The job's loop and each of its ticks."""

    running: bool = field(default=False, init=False)
    """Whether `run_forever` is running."""

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Tick every `config.tick` until `stop` is set; a tick the database fails is retried."""
        self.running = True
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except (SQLAlchemyError, OSError):
                    metrics.TICKS.labels("error").inc()
                    log.exception("scheduler tick failed; retrying at the next tick")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.tick.total_seconds())
        finally:
            self.running = False

    async def tick(self) -> JobRunRecord | None:
        """Reconcile, record what is due, publish what is pending; the job run if any work."""
        now = self.clock.now()
        started = time.perf_counter()
        run = JobRun("schedule", now, {"instance": self.config.instance})
        with log_context(job_id=JOB_ID):
            try:
                await self.sync(now)
                step = time.perf_counter()
                await self._record_due(now, run)
                run.timed("record_seconds", step)
                step = time.perf_counter()
                await self.publishing.publish_pending(now, run)
                run.timed("publish_seconds", step)
                await self._update_backlog(now)
            except Exception as exc:
                await self.runs.abandon(run, exc)
                raise
        metrics.TICKS.labels("ok").inc()
        metrics.LAST_TICK.set_to_current_time()
        metrics.TICK_SECONDS.observe(time.perf_counter() - started)
        return await self.runs.finish(run) if run.id is not None else None

    # -- step 0: the schedule follows the links --------------------------------------------
    async def sync(self, now: datetime) -> bool:
        """Reconcile `summary_schedules` with the links; False if another replica is doing it."""
        async with self.store.begin() as tx:
            if not await tx.try_lock_sync():
                return False
            plan = plan_sync(await tx.differences(), now, now - self.config.tick)
            await tx.add_schedules(plan.add, now)
            await tx.reschedule(plan.move, now)
            await tx.remove_schedules(plan.remove)
        if plan.add or plan.move or plan.remove:
            log.info(
                "schedule reconciled with the links",
                extra={
                    "added": len(plan.add),
                    "moved": len(plan.move),
                    "removed": len(plan.remove),
                },
            )
        if plan.invalid_zones:
            log.warning(
                "links with an unknown time zone are scheduled in UTC",
                extra={"users": sorted(plan.invalid_zones)[:20], "count": len(plan.invalid_zones)},
            )
        return True

    # -- step 1: record due triggers -------------------------------------------------------
    async def _record_due(self, now: datetime, run: JobRun) -> None:
        await in_lanes(self.config.lanes, lambda: self._record_lane(now, run))

    async def _record_lane(self, now: datetime, run: JobRun) -> None:
        while True:
            async with self.store.begin() as tx:
                rows = await tx.claim_due(now, self.config.batch_size)
                if not rows:
                    return
                plan = plan_due(rows, now, self.config.catch_up)
                run_id = await self.runs.id_of(run)
                recorded = await tx.record_scheduled(plan.record, run_id, now)
                await tx.advance(plan.advance, now)
                await tx.remove_schedules(plan.remove)
            metrics.TRIGGERS_RECORDED.labels("scheduled").inc(recorded)
            metrics.TRIGGERS_SKIPPED.labels("late").inc(len(plan.late))
            run.count(
                recorded=recorded,
                already_recorded=len(plan.record) - recorded,
                skipped_late=len(plan.late),
                unscheduled=len(plan.remove),
            )
            if plan.late:
                log.warning(
                    "triggers due longer ago than the catch-up grace were skipped",
                    extra={
                        "count": len(plan.late),
                        "users": [e.user_id for e in plan.late[:20]],
                        "catch_up_hours": self.config.catch_up.total_seconds() / 3600,
                    },
                )

    # -- step 2 is publishing.py; then the backlog gauge -----------------------------------
    async def _update_backlog(self, now: datetime) -> None:
        async with self.store.begin() as tx:
            metrics.UNPUBLISHED.set(await tx.unpublished_count(now - self.config.catch_up))
