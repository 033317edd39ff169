"""The daily summary job's identity (as the spec names it) and its knobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

JOB_ID = "telegram_daily_summary"
JOB_NAME = "Telegram Daily Summary"
JOB_TRIGGER = "daily at each user's summary time in their time zone (default 09:00 UTC)"


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


RETENTION_JOB_ID = "telegram_data_retention"
"""The pruning job (`upkeep.py`): its runs are `job_runs` rows with this id, one per slot."""
