"""The retry policy: what each kind of Telegram failure means for a send and for an edit (pure)."""

import pytest

from services.notifier.records import DeliveryStatus, Verdict
from services.notifier.retry import MOVED, PACED, Retry, RetryPolicy
from services.notifier.telegram import Failure, SendError

pytestmark = pytest.mark.unit

POLICY = RetryPolicy(max_attempts=6, max_rate_limited=20, backoff_base=0.5, backoff_max=30.0)

PAUSE = SendError(Failure.RETRY_AFTER, "Too Many Requests", 429, retry_after=3)
MIGRATED = SendError(Failure.MIGRATED, "group upgraded", 400, migrate_to_chat_id=-1001234)
MIGRATED_NOWHERE = SendError(Failure.MIGRATED, "group upgraded", 400)
GONE = SendError(Failure.CHAT_GONE, "Forbidden: bot was blocked by the user", 403)
REJECTED = SendError(Failure.REJECTED, "Bad Request: can't parse entities", 400)
DOWN = SendError(Failure.TRANSIENT, "Bad Gateway", 502)
TIMEOUT = SendError(Failure.UNCERTAIN, "no answer before the timeout")


def fixed(draw: float) -> RetryPolicy:
    return RetryPolicy(jitter=lambda: draw)


@pytest.mark.parametrize(
    ("error", "attempts", "rate_limited", "expected"),
    [
        (PAUSE, 1, 0, PACED),
        (PAUSE, 1, 18, PACED),
        (PAUSE, 1, 19, Verdict(DeliveryStatus.FAILED, None, str(PAUSE), "retries_exhausted")),
        (MIGRATED, 1, 0, MOVED),
        (MIGRATED_NOWHERE, 1, 0,
         Verdict(DeliveryStatus.FAILED, None, str(MIGRATED_NOWHERE), "undeliverable")),
        (GONE, 1, 0, Verdict(DeliveryStatus.UNDELIVERABLE, None, str(GONE))),
        (TIMEOUT, 1, 0, Verdict(DeliveryStatus.UNCERTAIN, None, str(TIMEOUT))),
        (REJECTED, 1, 0, Verdict(DeliveryStatus.FAILED, None, str(REJECTED), "undeliverable")),
        (DOWN, 6, 0, Verdict(DeliveryStatus.FAILED, None, str(DOWN), "retries_exhausted")),
    ],
)  # fmt: skip
def test_a_failed_send(error, attempts, rate_limited, expected):
    assert POLICY.after_send_failure(error, attempts, rate_limited) == expected


@pytest.mark.parametrize(
    ("attempts", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (20, 30.0)]
)
def test_a_transient_failure_waits_a_doubling_capped_backoff_half_to_all_of_it(attempts, ceiling):
    patient = RetryPolicy(max_attempts=100, jitter=lambda: 0.0)
    assert patient.after_send_failure(DOWN, attempts, 0) == Retry("transient", ceiling / 2)
    assert ceiling / 2 < fixed(0.9999).backoff(attempts) < ceiling


def test_a_transient_failure_is_retried_until_the_last_attempt():
    assert isinstance(POLICY.after_send_failure(DOWN, 5, 0), Retry)
    assert isinstance(POLICY.after_send_failure(DOWN, 6, 0), Verdict)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (MIGRATED, Verdict(DeliveryStatus.SKIPPED, None, f"chat migrated: {MIGRATED}")),
        (REJECTED, Verdict(DeliveryStatus.UNDELIVERABLE, None, str(REJECTED))),
        (GONE, Verdict(DeliveryStatus.UNDELIVERABLE, None, str(GONE))),
        (PAUSE, PACED),
    ],
)
def test_a_failed_edit(error, expected):
    assert POLICY.after_edit_failure(error, 1, 0) == expected


def test_a_timed_out_edit_is_repeated_like_a_transient_failure():
    """Editing is idempotent: no answer is retried, and in the end counted as exhausted."""
    assert fixed(0.0).after_edit_failure(TIMEOUT, 1, 0) == Retry("transient", 0.25)
    assert POLICY.after_edit_failure(TIMEOUT, 6, 0) == Verdict(
        DeliveryStatus.FAILED,
        None,
        "transient: no answer before the timeout",
        "retries_exhausted",
    )
