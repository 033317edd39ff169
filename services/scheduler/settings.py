"""The scheduler's settings (docs/architecture.md, "Configuration"), built in its composition
root."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field, model_validator

from services.common.auth import JwtSettings
from services.scheduler.retention_settings import RetentionSettings


class SchedulerSettings(JwtSettings, RetentionSettings):
    """Every variable the scheduler reads.

    The scheduler never talks to Telegram or reads chat ids, so a production run does not need
    TELEGRAM_BOT_TOKEN or CHAT_ID_ENCRYPTION_KEY; everything else of `validate_for_production()`
    (broker and database URLs, JWT variables and audiences, placeholders) applies.
    """

    requires_telegram: ClassVar[bool] = False

    scheduler_host: str = Field(default="0.0.0.0", pattern=r"^[A-Za-z0-9.:_-]{1,253}$")
    """An IP address or host name to bind."""
    scheduler_port: int = Field(default=8001, ge=0, le=65535)
    summary_catch_up_hours: float = Field(default=6.0, ge=0, le=72)
    """How late a trigger may still be emitted after downtime or a broker outage."""
    scheduler_tick_seconds: float = Field(default=10.0, ge=0.01, le=300)
    """How often each replica looks for due users (the most a trigger waits past its time)."""
    scheduler_batch_size: int = Field(default=5000, ge=1, le=100_000)
    """Rows recorded or published per transaction."""
    scheduler_publish_window: int = Field(default=500, ge=1, le=10_000)
    """Publishes awaiting their broker confirm at once."""
    scheduler_lanes: int = Field(default=2, ge=1, le=8)
    """Batches each replica records or publishes at once (each holds a database connection)."""
    scheduler_publish_timeout_seconds: float = Field(default=10.0, ge=0.01, le=120)
    scheduler_publish_mandatory: bool = True
    """Treat a trigger no queue is bound for as failed (retried) instead of silently dropped."""
    scheduler_db_pool_size: int = Field(default=5, ge=1, le=50)

    @model_validator(mode="after")
    def _activity_outlives_the_catch_up(self) -> SchedulerSettings:
        # A report covers a whole local day and is due up to a day after it ends, then may be
        # emitted SUMMARY_CATCH_UP_HOURS late: the day's activity must still be there.
        needed = 48 + self.summary_catch_up_hours
        if self.retention_activity_days * 24 < needed:
            raise ValueError(
                f"RETENTION_ACTIVITY_DAYS must be at least {needed / 24:g} days (a local day, the "
                "day after it, and SUMMARY_CATCH_UP_HOURS) so a daily report finds its day"
            )
        return self

    @property
    def catch_up(self) -> timedelta:
        """SUMMARY_CATCH_UP_HOURS as a duration."""
        return timedelta(hours=self.summary_catch_up_hours)

    @property
    def tick(self) -> timedelta:
        """SCHEDULER_TICK_SECONDS as a duration."""
        return timedelta(seconds=self.scheduler_tick_seconds)
