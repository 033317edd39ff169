"""The retention job: every PRUNE_INTERVAL_MINUTES one scheduler replica prunes (`retention.py`).

Exactly once per slot, like the summaries: the time is cut into slots of the interval; a replica
that reaches a slot inserts its `job_runs` row (job `telegram_data_retention`, unique per job and
slot) with `ON CONFLICT DO NOTHING`, and only the replica whose insert wrote the row prunes. A
replica that dies while pruning leaves its run unfinished; the next slot prunes what is left
(pruning is idempotent, and batches skip rows another prune holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler import metrics
from services.scheduler.clock import Clock
from services.scheduler.config import RETENTION_JOB_ID
from services.scheduler.retention import PruneReport, prune
from services.scheduler.retention_settings import RetentionSettings

log = logging.getLogger("services.scheduler")

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

CLAIM_SLOT = text("""
    INSERT INTO job_runs (job_id, trigger, started_at, emitted, failed, details, slot)
    VALUES (:job_id, :trigger, :started_at, 0, 0, CAST(:details AS jsonb), :slot)
    ON CONFLICT (job_id, slot) DO NOTHING
    RETURNING id
""")

FINISH_RUN = text("""
    UPDATE job_runs SET finished_at = :finished_at, error = :error,
        details = details || CAST(:details AS jsonb)
    WHERE id = :id
""")


def slot_of(now: datetime, interval: timedelta) -> datetime:
    """The start of the slot `now` falls in (slots of `interval` from 2000-01-01 UTC)."""
    return _EPOCH + ((now - _EPOCH) // interval) * interval


class RetentionJob:
    """Prunes once per slot across every replica; `run_forever` is the scheduler's loop."""

    def __init__(
        self, engine: AsyncEngine, settings: RetentionSettings, clock: Clock, instance: str
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.instance = instance

    async def run_slot(self, now: datetime | None = None) -> PruneReport | None:
        """Prune for the slot `now` falls in, unless another replica claimed it (then None)."""
        now = now or self.clock.now()
        slot = slot_of(now, self.settings.prune_interval)
        async with self.engine.begin() as conn:
            run_id = (
                await conn.execute(
                    CLAIM_SLOT,
                    {
                        "job_id": RETENTION_JOB_ID,
                        "trigger": "schedule",
                        "started_at": now,
                        "details": json.dumps({"instance": self.instance}),
                        "slot": slot,
                    },
                )
            ).scalar_one_or_none()
        if run_id is None:
            metrics.PRUNE_RUNS.labels("claimed_elsewhere").inc()
            return None
        try:
            report = await prune(self.engine, self.settings, now)
        except Exception as exc:
            metrics.PRUNE_RUNS.labels("error").inc()
            await self._finish(run_id, {}, f"{type(exc).__name__}: {exc}"[:2000])
            raise
        for table in report.tables:
            metrics.PRUNED_ROWS.labels(table.table).inc(table.rows)
            metrics.PRUNED_BYTES.labels(table.table).inc(table.bytes)
        metrics.PRUNE_RUNS.labels("ok").inc()
        metrics.PRUNE_SECONDS.observe(report.seconds)
        await self._finish(run_id, report.details(), None)
        log.info(
            "data retention: pruned",
            extra={"rows": report.by_table(), "bytes": report.bytes, "slot": slot.isoformat()},
        )
        return report

    async def _finish(self, run_id: int, details: dict[str, object], error: str | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                FINISH_RUN,
                {
                    "id": run_id,
                    "finished_at": self.clock.now(),
                    "error": error,
                    "details": json.dumps(details),
                },
            )

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run each slot once it starts, until `stop`; a slot the database fails is logged and
        its work left to the next one."""
        interval = self.settings.prune_interval
        while not stop.is_set():
            now = self.clock.now()
            try:
                await self.run_slot(now)
            except Exception:  # never stops the summaries: the next slot prunes what is left
                log.exception("data retention failed; the next slot prunes what is left")
            wait = slot_of(now, interval) + interval - self.clock.now()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(wait.total_seconds(), 1.0))
