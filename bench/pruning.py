"""Pruning beside the notifier: the scheduler's `prune` (services/scheduler/retention.py) deleting
history while the notifier bench's procedures run, on a database filled by bench/history.py.

The history lies inside every table's retention window, as in a steady state. To have something
to delete, the prune is told the time is an hour later than it is, then two hours, ... (each call
deletes the hour of history that has just expired) for as long as the measured run lasts; the
notifier's own new rows are never old enough. Rows per second: rows deleted / seconds pruning.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from services.scheduler.retention import prune
from services.scheduler.retention_settings import RetentionSettings

from shared.db import create_engine

T = TypeVar("T")


def retention() -> RetentionSettings:
    """The retention defaults (RETENTION_* unset)."""
    return RetentionSettings()


def retention_days() -> dict[str, float]:
    """Each history table's default retention, in days."""
    r = retention()
    return {
        "processed_events": r.retention_processed_events_days,
        "activity": r.retention_activity_days,
        "deliveries": r.retention_deliveries_days,
    }


async def _prune_hours(database_url: str, stop: asyncio.Event, out: dict[str, Any]) -> None:
    """Prune hour after hour of history until `stop` (or until all but a day of the shortest
    window is used up)."""
    engine = create_engine(database_url, pool_size=1)
    settings = RetentionSettings(database_url=database_url)
    tables: Counter[str] = Counter()
    last = int(24 * (min(retention_days().values()) - 1))
    try:
        hour = out.setdefault("hour", 0)
        while not stop.is_set() and hour < last:
            hour += 1
            report = await prune(engine, settings, datetime.now(UTC) + timedelta(hours=hour))
            out["rows"] = out.get("rows", 0) + report.rows
            out["seconds"] = out.get("seconds", 0.0) + report.seconds
            out["batches"] = out.get("batches", 0) + sum(t.batches for t in report.tables)
            tables.update(report.by_table())
            out["hour"] = hour
    finally:
        out["rows_by_table"] = dict(tables)
        await engine.dispose()


async def while_pruning(
    database_url: str, measured: Awaitable[T], state: dict[str, Any]
) -> tuple[T, dict[str, Any]]:
    """Run `measured` while pruning; its result and what the prune did meanwhile (`state` carries
    the last pruned hour from one call to the next)."""
    stop = asyncio.Event()
    before = {k: state.get(k, 0) for k in ("rows", "seconds", "batches")}
    pruner = asyncio.create_task(_prune_hours(database_url, stop, state))
    try:
        result = await measured
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await pruner
    rows = state.get("rows", 0) - before["rows"]
    seconds = state.get("seconds", 0.0) - before["seconds"]
    return result, {
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds) if seconds else None,
        "batches": state.get("batches", 0) - before["batches"],
        "pruned_hours_ahead": state.get("hour"),
    }
