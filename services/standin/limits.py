"""Telegram's rate limits as the stand-in enforces them, and the early retries it watches for.

sendMessage is limited by sliding windows per bot, per chat and per group, editMessageText in
groups by a window of edits per group; all measured on arrival. After a 429 the chat it answered
is penalized until its retry_after has passed: a request to that chat (from the same token) that
arrives during it, after a short grace, counts as an early retry.

The limits may be lower than Telegram's documented ones (a "hidden" limit the notifier must find),
and `one_way_delay` makes the stand-in a network away: each request waits that long before it is
counted and answered, and the answer that long again (a round trip of twice it).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from services.standin.wire import ApiError

LIMITED_METHOD = "sendMessage"
"""The method the bot-wide, chat and group windows limit."""
EDIT_METHOD = "editMessageText"
"""The method the group edit window limits."""
WATCHED_METHODS = frozenset({LIMITED_METHOD, EDIT_METHOD})
"""The methods whose 429s start a penalty, and whose early retries are counted."""
PAID_BROADCAST_PER_SEC = 1000
"""Telegram's global limit for messages sent with allow_paid_broadcast."""


@dataclass
class Limits:
    """Rate limits (None = off): at most N messages in any sliding window, measured on arrival."""

    global_per_sec: int | None = None
    per_chat_per_sec: int | None = None
    per_group_per_min: int | None = None
    slack: float = 0.02  # windows are this much shorter, to absorb loopback jitter
    edits_per_group_per_min: int | None = None
    one_way_delay: float = 0.0
    """Seconds each request travels before it is counted, and each answer before it arrives."""

    @classmethod
    def telegram(cls) -> Limits:
        """Telegram's documented limits: 30/s per bot, 1/s per chat, 20/min per group."""
        return cls(global_per_sec=30, per_chat_per_sec=1, per_group_per_min=20)

    @classmethod
    def coerce(cls, value: Limits | Mapping[str, Any] | bool | None) -> Limits:
        """Build Limits from a Limits, a mapping, True (Telegram's) or None/False (off)."""
        if isinstance(value, Limits):
            return Limits(**asdict(value))
        if value is True:
            return cls.telegram()
        if not value:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown limit fields: {sorted(unknown)}")
        kw = {
            k: v for k, v in value.items() if k not in ("slack", "one_way_delay") or v is not None
        }
        return cls(**kw)

    @property
    def enabled(self) -> bool:
        """Whether any limit is on."""
        return bool(
            self.global_per_sec
            or self.per_chat_per_sec
            or self.per_group_per_min
            or self.edits_per_group_per_min
        )


class RateLimiter:
    """The windows of the current limits, the 429 penalties, and their counters."""

    def __init__(self, limits: Limits, early_retry_grace: float) -> None:
        self.limits = Limits(**asdict(limits))
        self.early_retry_grace = early_retry_grace
        self._global_windows: dict[str, list[float]] = {}
        self._chat_windows: dict[int, list[float]] = {}
        self._group_windows: dict[int, list[float]] = {}
        self._edit_windows: dict[int, list[float]] = {}
        self._penalty: dict[tuple[str, str], list[float]] = {}  # (token, chat) -> [429 at, until]
        self.too_many_requests = 0
        self.early_retries = 0

    def set(self, limits: Limits | Mapping[str, Any] | bool | None) -> Limits:
        """Replace the limits (None/False = off, True = Telegram's) and clear the windows."""
        self.limits = Limits.coerce(limits)
        self._global_windows.clear()
        self._chat_windows.clear()
        self._group_windows.clear()
        self._edit_windows.clear()
        return self.limits

    def check(self, token: str, chat_id: int, paid: bool = False) -> None:
        """Count one send, or raise the 429 Telegram would answer if it exceeds a window."""
        limits = self.limits
        checks: list[tuple[dict[Any, list[float]], Any, int, float]] = []
        if limits.global_per_sec:
            # Paid broadcasts (allow_paid_broadcast) may go up to 1000 messages per second.
            cap = (
                max(limits.global_per_sec, PAID_BROADCAST_PER_SEC)
                if paid
                else limits.global_per_sec
            )
            checks.append((self._global_windows, token, cap, 1.0))
        if limits.per_chat_per_sec:
            checks.append((self._chat_windows, chat_id, limits.per_chat_per_sec, 1.0))
        if limits.per_group_per_min and chat_id < 0:
            checks.append((self._group_windows, chat_id, limits.per_group_per_min, 60.0))
        self._count(checks)

    def check_edit(self, chat_id: int) -> None:
        """Count one edit of a message in a group, or raise the 429 if it exceeds the window."""
        cap = self.limits.edits_per_group_per_min
        if cap and chat_id < 0:
            self._count([(self._edit_windows, chat_id, cap, 60.0)])

    def _count(self, checks: list[tuple[dict[Any, list[float]], Any, int, float]]) -> None:
        limits = self.limits
        now = time.monotonic()
        waits = []
        windows = []
        for table, key, cap, span in checks:
            window = max(span - limits.slack, 0.001)
            stamps = table.get(key)
            if stamps is None:
                stamps = table[key] = []
            cut = bisect.bisect_right(stamps, now - window)
            if cut:
                del stamps[:cut]
            if len(stamps) >= cap:
                waits.append(stamps[len(stamps) - cap] + window - now)
            windows.append(stamps)
        if waits:
            retry_after = max(1, math.ceil(max(waits)))
            raise ApiError(
                429,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )
        for stamps in windows:
            stamps.append(now)

    def answered_429(self) -> None:
        """Count a 429 answer."""
        self.too_many_requests += 1

    def penalize(self, token: str, chat: str, retry_after: int | None) -> None:
        """A 429's retry_after starts (or extends) the chat's penalty for `token`."""
        if not retry_after:
            return
        now = time.monotonic()
        key = (token, chat)
        penalty = self._penalty.get(key)
        if penalty is None or penalty[1] <= now:
            self._penalty[key] = [now, now + retry_after]
        else:
            penalty[1] = max(penalty[1], now + retry_after)

    @property
    def penalized(self) -> bool:
        """Whether any token is (or was, until its next send) under a 429's retry_after."""
        return bool(self._penalty)

    def check_early(self, token: str, chat: str) -> None:
        """Count a request to `chat` that arrives while its 429's retry_after still runs."""
        penalty = self._penalty.get((token, chat))
        if penalty is None:
            return
        now = time.monotonic()
        if now >= penalty[1]:
            del self._penalty[(token, chat)]
        elif now > penalty[0] + self.early_retry_grace:
            self.early_retries += 1
