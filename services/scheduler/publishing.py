"""Publishing recorded triggers: claim unpublished runs (`FOR UPDATE SKIP LOCKED`), publish them
with broker confirms (up to a window outstanding), mark them published in the same transaction.
A trigger the broker does not confirm stays pending with its error and is retried next tick."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from services.scheduler import metrics
from services.scheduler.clock import Clock
from services.scheduler.config import JobConfig
from services.scheduler.plan import PendingRun, trigger_event
from services.scheduler.ports import SchedulerStore, SchedulerTx, TriggerPublisher
from services.scheduler.runs import JobRun, JobRuns
from shared.publisher import PublishError

log = logging.getLogger("services.scheduler")


async def in_lanes(lanes: int, lane: Callable[[], Awaitable[None]]) -> None:
    """Run `lanes` copies of a claim-work-commit loop at once (SKIP LOCKED keeps their batches
    apart), so one lane's database round trips overlap another's publishing."""
    results = await asyncio.gather(*(lane() for _ in range(lanes)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


@dataclass
class Publishing:
    """Publishes the recorded, unpublished triggers."""

    store: SchedulerStore
    publisher: TriggerPublisher
    clock: Clock
    config: JobConfig
    runs: JobRuns

    async def publish_pending(
        self, now: datetime, run: JobRun, only: Sequence[int] | None = None
    ) -> None:
        """Publish every unpublished run within the grace (or only the runs `only`), as `run`.

        Once the broker refuses one lane's trigger, every lane stops claiming: without that, a
        lane claiming after the failed lane committed would take the same triggers again and
        count a second failed attempt for each in one tick."""
        lanes = self.config.lanes if only is None else 1
        refused = asyncio.Event()
        await in_lanes(lanes, lambda: self._publish_lane(now, run, only, lanes, refused))

    async def _publish_lane(
        self,
        now: datetime,
        run: JobRun,
        only: Sequence[int] | None,
        lanes: int,
        refused: asyncio.Event,
    ) -> None:
        oldest = now - self.config.catch_up
        while not refused.is_set():
            async with self.store.begin() as tx:
                if refused.is_set():  # set while this transaction began
                    return
                pending = await tx.claim_unpublished(oldest, self.config.batch_size, only)
                if not pending:
                    return
                await self.runs.id_of(run)
                if await self._publish_claimed(tx, pending, run, lanes):
                    # The broker is refusing: leave the rest for the next tick (set before
                    # this commit releases the claimed rows to another lane).
                    refused.set()

    async def _publish_claimed(
        self, tx: SchedulerTx, pending: Sequence[PendingRun], run: JobRun, lanes: int
    ) -> int:
        window = max(1, self.config.publish_window // lanes)
        confirmed, errors = await self._publish_all(pending, window)
        published = [pending[i] for i in confirmed]
        failures = [(pending[i], error) for i, error in errors]
        confirmed_at = self.clock.now()
        await tx.mark_published([p.id for p in published], confirmed_at)
        await tx.mark_failed([(p.id, error) for p, error in failures])
        for p in published:
            metrics.TRIGGERS_EMITTED.labels(p.kind).inc()
            lag = (confirmed_at - p.due_at).total_seconds()
            metrics.TRIGGER_LAG.labels(p.kind).observe(max(0.0, lag))
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


@dataclass
class JobParts:
    """What the job's rooms (`Ticks`, `Admin`) share: one replica's store, clock and settings,
    its runs' rows and its publishing."""

    store: SchedulerStore
    clock: Clock
    config: JobConfig
    runs: JobRuns
    publishing: Publishing
