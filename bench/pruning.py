"""Pruning beside the notifier: the scheduler's `prune` (services/scheduler/retention.py) deleting
history while the notifier bench's procedures run, on a database filled by bench/history.py.

The history lies inside every table's retention window, as in a steady state. To have something
to delete, the prune is told the time is an hour later than it is, then two hours, ... (each call
deletes the hour of history that has just expired) for as long as the measured run lasts; the
notifier's own new rows are never old enough. It runs in a process of its own, as the scheduler
would (`python -m bench.pruning URL FIRST_HOUR REPORT`): one JSON line per call in REPORT; on
SIGTERM it finishes the call under way and stops. Rows per second: rows deleted / seconds pruning.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bench.harness import Process
from services.scheduler.retention import prune
from services.scheduler.retention_settings import RetentionSettings
from shared.db import create_engine

T = TypeVar("T")


def retention_days() -> dict[str, float]:
    """Each history table's default retention (RETENTION_*_DAYS unset), in days."""
    r = RetentionSettings()
    return {
        "processed_events": r.retention_processed_events_days,
        "activity": r.retention_activity_days,
        "deliveries": r.retention_deliveries_days,
    }


async def _prune_hours(database_url: str, first: int, report: Path) -> None:
    """Prune hour after hour of history from hour `first` on, until SIGTERM (or until all but a
    day of the shortest window is used up); one JSON line per call in `report`."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    engine = create_engine(database_url, pool_size=1)
    settings = RetentionSettings(database_url=database_url)
    last = int(24 * (min(retention_days().values()) - 1))
    try:
        with report.open("a") as out:
            for hour in range(first + 1, last + 1):
                if stop.is_set():
                    break
                done = await prune(engine, settings, datetime.now(UTC) + timedelta(hours=hour))
                line = {"hour": hour, "rows": done.rows, "seconds": done.seconds}
                line |= {"batches": sum(t.batches for t in done.tables), "by": done.by_table()}
                out.write(json.dumps(line) + "\n")
                out.flush()
    finally:
        await engine.dispose()


async def while_pruning(
    database_url: str, measured: Awaitable[T], state: dict[str, Any]
) -> tuple[T, dict[str, Any]]:
    """Run `measured` while a pruner process prunes; its result and what the prune did meanwhile
    (`state` carries the last pruned hour from one call to the next)."""
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "prune.jsonl"
        report.touch()
        argv = ["-m", "bench.pruning", database_url, str(state.get("hour", 0)), str(report)]
        pruner = Process(argv, {"LOG_LEVEL": "WARNING"}, "pruner")
        try:
            result = await measured
        finally:
            pruner.stop()
        calls = [json.loads(line) for line in report.read_text().splitlines()]
    rows = sum(c["rows"] for c in calls)
    seconds = sum(c["seconds"] for c in calls)
    tables: Counter[str] = Counter()
    for c in calls:
        tables.update(c["by"])
    state["hour"] = calls[-1]["hour"] if calls else state.get("hour", 0)
    return result, {
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds) if seconds else None,
        "batches": sum(c["batches"] for c in calls),
        "rows_by_table": dict(tables),
        "hours_pruned": len(calls),
    }


if __name__ == "__main__":
    asyncio.run(_prune_hours(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
