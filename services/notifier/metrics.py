"""Prometheus metrics of the notifier (served on NOTIFIER_PORT at /metrics).

The dashboard and the alert rules in deploy/observability/ read these names: rename one there too
(the e2e test tests/e2e/test_prometheus.py fails on a panel whose series is gone).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from services.notifier.records import DeliveryStatus
from shared.contract import DeadLetterReason

EVENTS = Counter(
    "notifier_events_total", "Events consumed, by type and outcome", ["type", "outcome"]
)
SENT = Counter("notifier_messages_sent_total", "Messages Telegram accepted", ["type"])
TELEGRAM_ERRORS = Counter(
    "notifier_telegram_errors_total", "Failed sendMessage calls, by class", ["failure"]
)
EDITED = Counter("notifier_messages_edited_total", "Messages edited in place (post metrics)")
HELD = Counter("notifier_held_total", "Messages held for the user's quiet hours")
RELEASED = Counter(
    "notifier_released_total", "Held messages released after quiet hours, by result", ["status"]
)
RETRIES = Counter("notifier_retries_total", "Sends retried, by reason", ["reason"])
DEAD_LETTERED = Counter("notifier_dead_lettered_total", "Messages sent to the DLQ", ["reason"])
SEND_LATENCY = Histogram(
    "notifier_send_seconds",
    "Duration of one sendMessage call",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RATE_WAIT = Histogram(
    "notifier_rate_limit_wait_seconds",
    "Time a message waited for the rate limiter",
    buckets=(0, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
)
LAG = Histogram(
    "notifier_event_lag_seconds",
    "From the event's occurred_at to Telegram accepting the message",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
IN_FLIGHT = Gauge("notifier_in_flight", "Events being processed (unacknowledged)")
BATCH_SIZE = Histogram(
    "notifier_batch_size", "Events per database batch", buckets=(1, 2, 5, 10, 25, 50, 100, 250)
)
PHOTO_FALLBACKS = Counter(
    "notifier_photo_fallbacks_total",
    "Photo notifications Telegram refused (bad URL, too big) and that were sent as text instead",
)
DIGESTS = Counter("notifier_digests_total", "Messages sent as a digest of a burst to one chat")
ISOLATED = Counter(
    "notifier_isolated_failures_total",
    "Events dead-lettered alone after their batch failed for a reason that was not the database "
    "being unreachable (the rest of the batch went on)",
)
RETRY_AFTER = Histogram(
    "notifier_retry_after_seconds",
    "The pause Telegram asked for with each 429 (parameters.retry_after)",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300),
)
TELEGRAM_RATE_LIMIT = Gauge(
    "notifier_telegram_rate_limit",
    "The configured send limits (0: unlimited): global and per_chat per second, per_group per "
    "minute; the dashboard's budget is requests per second against the global one",
    ["scope"],
)
HELD_WAITING = Gauge(
    "notifier_held_messages", "Deliveries held for quiet hours now (all users; every replica)"
)
HELD_OVERDUE = Gauge(
    "notifier_held_overdue_seconds",
    "How long the earliest held delivery is past its release time (0: none overdue)",
)
RATE_ADAPTED = Gauge(
    "notifier_telegram_rate_adapted",
    "The global send rate in force after what 429s taught (per second; starts at the configured "
    "one, lowered by 429s across chats, climbing back while sends go well)",
)
STALLED = Gauge(
    "notifier_stalled_seconds",
    "Seconds without progress while events wait (0 when nothing waits); the notifier stops "
    "itself at NOTIFIER_STALL_SECONDS",
)


def describe_limits(global_per_second: float, per_chat: float, per_group_per_minute: float) -> None:
    """Publish the send limits in force, so the budget can be drawn against them."""
    TELEGRAM_RATE_LIMIT.labels("global").set(global_per_second)
    TELEGRAM_RATE_LIMIT.labels("per_chat").set(per_chat)
    TELEGRAM_RATE_LIMIT.labels("per_group").set(per_group_per_minute)
    RATE_ADAPTED.set(global_per_second)


def declare_failures(failures: Iterable[str]) -> None:
    """Export every failure class at 0 from the start, so a rate over it is 0, not missing."""
    for failure in failures:
        TELEGRAM_ERRORS.labels(failure)


# Exported at 0 from the start, so a rate over them is 0 rather than missing, and the first dead
# letter or release shows as an increase.
for _reason in get_args(DeadLetterReason):
    DEAD_LETTERED.labels(_reason)
for _status in (DeliveryStatus.SENT, DeliveryStatus.SKIPPED, DeliveryStatus.UNDELIVERABLE):
    RELEASED.labels(_status.value)  # what a release usually ends as (failures show when they occur)
