"""The daily summary job: each tick reconciles, records due triggers, then publishes them.

Exactly once, in three steps (see README.md):
1. record: due schedule rows are locked (`FOR UPDATE SKIP LOCKED`), their runs inserted with
   `ON CONFLICT DO NOTHING` on (user_id, summary_date, kind), and the rows advanced, in one
   transaction;
2. publish: unpublished runs are locked the same way, published with broker confirms, and
   marked `published_at` in that transaction; failures stay pending and are retried next tick;
3. a run published twice (a crash between the confirm and the commit) carries the same
   deterministic event id, which the notifier's inbox deduplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from sqlalchemy.exc import SQLAlchemyError

from services.common.logging import log_context
from services.scheduler import metrics
from services.scheduler.clock import Clock
from services.scheduler.plan import (
    NewRun,
    PendingRun,
    plan_due,
    plan_resend,
    plan_sync,
    plan_trigger_all,
    trigger_event,
)
from services.scheduler.store import JobRunRecord, SchedulerStore, SchedulerTx
from shared.contract import Event
from shared.publisher import PublishError

JOB_ID = "telegram_daily_summary"
JOB_NAME = "Telegram Daily Summary"
JOB_TRIGGER = "daily at each user's summary time in their time zone (default 09:00 UTC)"

log = logging.getLogger("services.scheduler")


class TriggerPublisher(Protocol):
    """The broker port (`shared.publisher.EventPublisher` satisfies it)."""

    @property
    def is_connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def publish(
        self, event: Event, *, mandatory: bool = True, headers: dict[str, Any] | None = None
    ) -> None: ...


@dataclass(frozen=True)
class JobConfig:
    """The knobs of the job (from `SchedulerSettings`)."""

    catch_up: timedelta = timedelta(hours=6)
    tick: timedelta = timedelta(seconds=10)
    batch_size: int = 5000
    publish_window: int = 500
    lanes: int = 2
    mandatory: bool = True
    instance: str = "scheduler"


class UnknownUser(LookupError):
    """A resend for a user who has no Telegram link."""


@dataclass
class _Run:
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


@dataclass(frozen=True)
class ResendOutcome:
    """What a deliberate resend did."""

    job_run: JobRunRecord
    run: NewRun
    published: bool


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
        self.running = False

    # -- the loop ---------------------------------------------------------------------------

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
        run = _Run("schedule", now, {"instance": self.config.instance})
        with log_context(job_id=JOB_ID):
            try:
                await self.sync(now)
                step = time.perf_counter()
                await self._record_due(now, run)
                run.timed("record_seconds", step)
                step = time.perf_counter()
                await self._publish_pending(now, run)
                run.timed("publish_seconds", step)
                await self._update_backlog(now)
            except Exception as exc:
                await self._abandon(run, exc)
                raise
        metrics.TICKS.labels("ok").inc()
        metrics.TICK_SECONDS.observe(time.perf_counter() - started)
        return await self._finish(run) if run.id is not None else None

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

    async def _in_lanes(self, lanes: int, lane: Callable[[], Awaitable[None]]) -> None:
        """Run `lanes` copies of a claim-work-commit loop at once (SKIP LOCKED keeps their
        batches apart), so one lane's database round trips overlap another's publishing."""
        results = await asyncio.gather(*(lane() for _ in range(lanes)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _record_due(self, now: datetime, run: _Run) -> None:
        await self._in_lanes(self.config.lanes, lambda: self._record_lane(now, run))

    async def _record_lane(self, now: datetime, run: _Run) -> None:
        while True:
            async with self.store.begin() as tx:
                rows = await tx.claim_due(now, self.config.batch_size)
                if not rows:
                    return
                plan = plan_due(rows, now, self.config.catch_up)
                run_id = await self._job_run_id(run)
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

    # -- step 2: publish recorded triggers -------------------------------------------------

    async def _publish_pending(
        self, now: datetime, run: _Run, only: Sequence[int] | None = None
    ) -> None:
        lanes = self.config.lanes if only is None else 1
        await self._in_lanes(lanes, lambda: self._publish_lane(now, run, only, lanes))

    async def _publish_lane(
        self, now: datetime, run: _Run, only: Sequence[int] | None, lanes: int
    ) -> None:
        oldest = now - self.config.catch_up
        while True:
            async with self.store.begin() as tx:
                pending = await tx.claim_unpublished(oldest, self.config.batch_size, only)
                if not pending:
                    return
                await self._job_run_id(run)
                failed = await self._publish_claimed(tx, pending, run, lanes)
            if failed:
                return  # the broker is refusing: leave the rest for the next tick

    async def _publish_claimed(
        self, tx: SchedulerTx, pending: Sequence[PendingRun], run: _Run, lanes: int
    ) -> int:
        window = max(1, self.config.publish_window // lanes)
        confirmed, errors = await self._publish_all(pending, window)
        published = [pending[i] for i in confirmed]
        failures = [(pending[i], error) for i, error in errors]
        await tx.mark_published([p.id for p in published], self.clock.now())
        await tx.mark_failed([(p.id, error) for p, error in failures])
        for p in published:
            metrics.TRIGGERS_EMITTED.labels(p.kind).inc()
        for p, _ in failures:
            metrics.TRIGGERS_FAILED.labels(p.kind).inc()
        run.emitted += len(published)
        run.failed += len(failures)
        if failures:
            log.warning(
                "triggers not confirmed by the broker; they stay pending and are retried",
                extra={
                    "failed": len(failures),
                    "published": len(published),
                    "not_attempted": len(pending) - len(published) - len(failures),
                    "error": failures[0][1],
                },
            )
        return len(failures)

    async def _publish_all(
        self, pending: Sequence[PendingRun], window: int
    ) -> tuple[list[int], list[tuple[int, str]]]:
        """Publish with up to `window` confirms outstanding: the indexes confirmed, and the
        indexes that failed with why. After a failure no new publish starts (a stalled broker
        costs one timeout, not one per message); the rest stay pending, untouched."""
        if not self.publisher.is_connected:
            try:
                await self.publisher.connect()
            except (OSError, TimeoutError, AMQPError) as exc:
                return [], [(i, f"broker unavailable: {exc!r}") for i in range(len(pending))]
        confirmed: list[int] = []
        failed: list[tuple[int, str]] = []
        work = iter(enumerate(pending))

        async def worker() -> None:
            for index, run in work:
                if failed:
                    return
                try:
                    await self.publisher.publish(
                        trigger_event(run), mandatory=self.config.mandatory
                    )
                except (PublishError, ChannelInvalidStateError) as exc:
                    failed.append((index, str(exc) or repr(exc)))
                else:
                    confirmed.append(index)

        await asyncio.gather(*(worker() for _ in range(min(window, len(pending)))))
        return confirmed, failed

    async def _update_backlog(self, now: datetime) -> None:
        async with self.store.begin() as tx:
            metrics.UNPUBLISHED.set(await tx.unpublished_count(now - self.config.catch_up))

    # -- the admin API's actions -----------------------------------------------------------

    async def trigger_all(self) -> JobRunRecord:
        """Run the job now: every active user's trigger for their last complete local day.

        A user whose trigger for that day was already recorded gets nothing new (that is what
        `resend` is for); the others get it now instead of at their summary time.
        """
        now = self.clock.now()
        started = time.perf_counter()
        run = _Run("manual", now, {"instance": self.config.instance})
        with log_context(job_id=JOB_ID):
            try:
                await self._job_run_id(run)
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
                await self._publish_pending(now, run)
                run.timed("publish_seconds", step)
            except Exception as exc:
                await self._abandon(run, exc)
                raise
            log.info("daily summary job triggered by hand", extra=run.details)
            return await self._finish(run)

    async def resend(self, user_id: str, day: date | None = None) -> ResendOutcome:
        """Deliberately resend one user's summary for one day, with a fresh event id."""
        now = self.clock.now()
        async with self.store.begin() as tx:
            link = await tx.link(user_id)
        if link is None:
            raise UnknownUser(user_id)
        new = plan_resend(link, day, now, uuid.uuid4())
        run = _Run(
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
                run_id = await self._job_run_id(run)
                async with self.store.begin() as tx:
                    row_id = await tx.record_resend(new, run_id, now)
                metrics.TRIGGERS_RECORDED.labels("resend").inc()
                await self._publish_pending(now, run, only=[row_id])
            except Exception as exc:
                await self._abandon(run, exc)
                raise
            log.info("daily summary resent by hand", extra={"date": str(new.summary_date)})
            finished = await self._finish(run)
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

    # -- job_runs bookkeeping --------------------------------------------------------------

    async def _job_run_id(self, run: _Run) -> int:
        async with run.lock:
            if run.id is None:
                async with self.store.begin() as tx:
                    run.id = await tx.start_job_run(
                        JOB_ID, run.trigger, run.started_at, run.details
                    )
        return run.id

    async def _finish(self, run: _Run, error: str | None = None) -> JobRunRecord:
        assert run.id is not None
        async with self.store.begin() as tx:
            return await tx.finish_job_run(
                run.id,
                finished_at=self.clock.now(),
                emitted=run.emitted,
                failed=run.failed,
                error=error,
                details=run.details,
            )

    async def _abandon(self, run: _Run, exc: BaseException) -> None:
        """Write the error into the run's row, if it has one; the exception propagates anyway."""
        if run.id is None:
            return
        try:
            await self._finish(run, error=f"{type(exc).__name__}: {exc}"[:2000])
        except (SQLAlchemyError, OSError):
            log.warning("could not record the failed job run", exc_info=True)
