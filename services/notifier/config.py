"""The notifier core's bounds (`ProcessorConfig`): batching, retries, release and digests. `main.py`
fills it from the settings; each room (`intake`, `delivery`, `results`, `release`) reads its own."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.notifier.retry import RetryPolicy


@dataclass(frozen=True)
class ProcessorConfig:
    """Batching, retry, release and digest bounds."""

    batch_size: int = 200
    batch_wait: float = 0.003
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """How many times, and how far apart, a message is tried."""
    db_retry_max: float = 10.0
    release_interval: float = 5.0
    release_users: int = 100
    digest_min: int = 0
    """Fold this many (or more) messages waiting for one chat into one; 0: never fold."""
    digest_window: float = 5.0
    """Only messages that arrived within this many seconds of the first are folded."""
