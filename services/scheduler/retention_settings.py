"""How long each kind of row is kept (RETENTION_*) and how pruning runs (PRUNE_*): read by the
scheduler, which prunes, and by `sns-telegram prune`. The reasoning behind each default and floor
is in docs/operations.md, "Data retention"."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field, model_validator

from shared.settings import BaseServiceSettings

RATE_LIMIT_STATE_KEPT_FOR = timedelta(hours=1)
"""A GCRA state whose TAT has passed allows exactly what no state allows (`gcra` starts from
max(TAT, now)), so it can go; the hour is a margin for clocks that disagree."""


class RetentionSettings(BaseServiceSettings):
    """The retention of every growing table (the scheduler's settings include these)."""

    requires_telegram: ClassVar[bool] = False

    retention_processed_events_days: float = Field(default=14, ge=3, le=3650)
    """Idempotency keys: longer than any redelivery or replay of an event. Automatic ones end
    within 72 hours (a daily trigger republished within SUMMARY_CATCH_UP_HOURS, at most 72);
    `dlq replay` is the operator's: replay dead letters younger than this."""
    retention_deliveries_days: float = Field(default=30, ge=3, le=3650)
    """The delivery log users and support read; also an idempotency key (a final delivery is
    never sent again), so at least RETENTION_PROCESSED_EVENTS_DAYS. Held ones stay until sent."""
    retention_activity_days: float = Field(default=8, ge=2, le=3650)
    """Platform events for the daily report (its local day, the day after, the catch-up grace)
    and for the Retry button (7 days) and live metrics edits."""
    retention_link_tokens_hours: float = Field(default=24, ge=1, le=87_600)
    """Expired link tokens (used and revoked ones expire too) are kept this long after expiry,
    so a late /start gets a precise answer; an unexpired token is never pruned."""
    retention_summary_runs_days: float = Field(default=30, ge=4, le=3650)
    """Daily-summary triggers (by due time): longer than the 72-hour catch-up, so a day is
    never recorded twice; the admin API's history."""
    retention_job_runs_days: float = Field(default=30, ge=1, le=3650)
    """Scheduler job history (the admin API's /history)."""
    prune_interval_minutes: float = Field(default=60, ge=1, le=1440)
    """How often the scheduler prunes (one replica per slot)."""
    prune_batch_size: int = Field(default=5000, ge=1, le=100_000)
    """Rows deleted per transaction: short transactions that never hold locks for long."""

    @model_validator(mode="after")
    def _deliveries_outlive_the_keys(self) -> RetentionSettings:
        if self.retention_deliveries_days < self.retention_processed_events_days:
            raise ValueError(
                "RETENTION_DELIVERIES_DAYS must be at least RETENTION_PROCESSED_EVENTS_DAYS "
                "(a delivery is an idempotency key too)"
            )
        return self

    @property
    def prune_interval(self) -> timedelta:
        """PRUNE_INTERVAL_MINUTES as a duration."""
        return timedelta(minutes=self.prune_interval_minutes)
