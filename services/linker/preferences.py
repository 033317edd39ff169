"""Notification preferences of a link: what can be set, and changing them (pure, no I/O).

The notifier reads them from `telegram_links` for every message (mute, quiet hours, language);
the scheduler reads `timezone` and `summary_time`, and skips users who muted `daily_summary`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import time

from shared import contract
from shared.contract import MAX_THREAD_ID as MAX_THREAD_ID  # the largest topic id stored
from shared.contract import is_iana_timezone as is_iana_timezone  # the API's zone check
from shared.models import TelegramLink

MUTABLE_TYPES: tuple[str, ...] = tuple(t.value for t in contract.MUTABLE_TYPES)
"""The notification types a user can mute, in display order, as stored in `muted_types` (declared
in `shared.contract.TYPES`)."""
LANGUAGES = ("ko", "en")
QUIET_PRESETS: tuple[tuple[time, time], ...] = ((time(22), time(7)), (time(23), time(8)))
"""Quiet hours offered as buttons in /settings (the API accepts any)."""
MODES = ("loud", "silent", "muted")
"""How a type is delivered: with a sound, without one (`disable_notification`), or not at all."""
QUIET_MODES = ("hold", "silent")
"""What quiet hours do: hold messages until they end (then fold them), or send them silently."""
DEFAULT_SILENT_TYPES = ("daily_summary",)

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class Preferences:
    """A link's notification settings; `quiet_hours` are local times in `timezone`."""

    muted_types: tuple[str, ...] = ()
    quiet_hours: tuple[time, time] | None = None
    language: str = "ko"
    timezone: str = "UTC"
    summary_time: time = time(9)
    silent_types: tuple[str, ...] = DEFAULT_SILENT_TYPES
    """Sent without a sound; a type also in `muted_types` is muted."""
    quiet_mode: str = "hold"
    link_previews: bool = True
    post_images: bool = True
    """A post notification whose event carries `data.image_url` is sent as that photo with the
    text as its caption; False: always a text message."""
    message_thread_id: int | None = None
    """The forum topic notifications go to; None: the chat itself (a forum's General topic)."""

    @classmethod
    def of(cls, link: TelegramLink) -> Preferences:
        """The preferences stored in a link row."""
        quiet = None
        start, end = link.quiet_start, link.quiet_end
        if start is not None and end is not None and start != end:  # an empty range is none
            quiet = (start, end)
        return cls(
            muted_types=ordered_types(link.muted_types),
            quiet_hours=quiet,
            language=link.language if link.language in LANGUAGES else "ko",
            timezone=link.timezone,
            summary_time=link.summary_time,
            silent_types=ordered_types(link.silent_types),
            quiet_mode=link.quiet_mode if link.quiet_mode in QUIET_MODES else "hold",
            link_previews=link.link_previews,
            post_images=link.post_images,
            message_thread_id=topic(link.message_thread_id),
        )

    def columns(self) -> dict[str, object]:
        """The `telegram_links` column values that store these preferences."""
        start, end = self.quiet_hours or (None, None)
        return {
            "muted_types": list(self.muted_types),
            "quiet_start": start,
            "quiet_end": end,
            "language": self.language,
            "timezone": self.timezone,
            "summary_time": self.summary_time,
            "silent_types": list(self.silent_types),
            "quiet_mode": self.quiet_mode,
            "link_previews": self.link_previews,
            "post_images": self.post_images,
            "message_thread_id": self.message_thread_id,
        }

    def muting(self, event_type: str, muted: bool) -> Preferences:
        """These preferences with `event_type` muted or not."""
        others = [t for t in self.muted_types if t != event_type]
        return replace(self, muted_types=ordered_types([*others, event_type] if muted else others))

    def mode(self, event_type: str) -> str:
        """How `event_type` is delivered: `loud`, `silent` or `muted` (muted wins)."""
        if event_type in self.muted_types:
            return "muted"
        return "silent" if event_type in self.silent_types else "loud"

    def with_mode(self, event_type: str, mode: str) -> Preferences:
        """These preferences with `event_type` delivered as `mode` (one of `MODES`)."""
        others = [t for t in self.silent_types if t != event_type]
        silent = ordered_types([*others, event_type] if mode == "silent" else others)
        return replace(self.muting(event_type, mode == "muted"), silent_types=silent)


PreferencesChange = Callable[[Preferences], Preferences]
"""A change to apply to a link's preferences (inside the transaction that locks the row)."""


def ordered_types(types: Iterable[str]) -> tuple[str, ...]:
    """The known types among `types`, once each, in display order."""
    given = set(types)
    return tuple(t for t in MUTABLE_TYPES if t in given)


def topic(thread: object) -> int | None:
    """`thread` as a forum topic a link can store, or None (General) when it is none: missing,
    not an int, or out of 1..`MAX_THREAD_ID`."""
    if isinstance(thread, int) and not isinstance(thread, bool) and 1 <= thread <= MAX_THREAD_ID:
        return thread
    return None


def parse_hhmm(text: str) -> time | None:
    """`"22:00"` as a time, or None when it is not HH:MM on a 24-hour clock."""
    match = _HHMM.match(text)
    if match is None:
        return None
    return time(int(match[1]), int(match[2]))


def hhmm(value: time) -> str:
    """A time as `HH:MM`."""
    return value.strftime("%H:%M")
