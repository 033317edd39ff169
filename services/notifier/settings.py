"""The notifier's configuration: environment variables of the same names, with their bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.notifier.ratelimit import Limits
from shared.settings import BaseServiceSettings

PAID_BROADCAST_RATE = 1000
"""Telegram's global limit for messages sent with allow_paid_broadcast."""


class NotifierSettings(BaseServiceSettings):
    """The notifier's configuration (environment variables of the same names)."""

    # Bounds: a rate is never negative (0 = unlimited), a timeout or interval never "forever",
    # the prefetch an AMQP short, the delivery limit a queue argument RabbitMQ accepts.
    notifier_port: int = Field(default=8002, ge=0, le=65535)
    telegram_rate_global: float = Field(default=30, ge=0, le=100_000)
    telegram_rate_per_chat: float = Field(default=1, ge=0, le=1000)
    telegram_rate_per_group_per_min: float = Field(default=20, ge=0, le=60_000)
    telegram_rate_edits_per_group_per_min: float = Field(default=20, ge=0, le=60_000)
    telegram_rate_adaptive: bool = True
    telegram_rate_count_at: Literal["arrival", "completion"] = "arrival"
    telegram_allow_paid_broadcast: bool = False
    telegram_timeout_seconds: float = Field(default=10, ge=0.01, le=300)
    notifier_prefetch: int = Field(default=500, ge=1, le=65535)
    notifier_batch_size: int = Field(default=200, ge=1, le=10_000)
    notifier_batch_wait_ms: float = Field(default=3, ge=0, le=10_000)
    notifier_max_attempts: int = Field(default=6, ge=1, le=100)
    notifier_delivery_limit: int = Field(default=5, ge=1, le=1000)
    notifier_shutdown_seconds: float = Field(default=8, ge=0, le=3600)
    notifier_release_interval_seconds: float = Field(default=5, ge=0.001, le=3600)
    notifier_digest_min: int = Field(default=0, ge=0, le=1000)
    notifier_digest_window_seconds: float = Field(default=5, ge=0, le=3600)
    notifier_stall_seconds: float = Field(default=60, ge=0.1, le=86_400)
    """No progress for this long while events wait: not ready, not live, and the notifier stops
    (exit status 1) so its messages go to the standby consumer."""

    def limits(self) -> Limits:
        """The send limits; paid broadcast raises the global one to 1000/s."""
        global_rate = self.telegram_rate_global
        if self.telegram_allow_paid_broadcast:
            global_rate = max(global_rate, PAID_BROADCAST_RATE)
        return Limits(
            global_rate,
            self.telegram_rate_per_chat,
            self.telegram_rate_per_group_per_min,
            edits_per_group_per_minute=self.telegram_rate_edits_per_group_per_min,
            adaptive=self.telegram_rate_adaptive,
            count_at=self.telegram_rate_count_at,
        )
