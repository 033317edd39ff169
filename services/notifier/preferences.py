"""Quiet hours: pure arithmetic on the user's local clock (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def zone(name: str | None) -> ZoneInfo:
    """The user's time zone; UTC when unset or unknown (the linker validates what it stores)."""
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def quiet_until(
    now: datetime, timezone: str | None, start: time | None, end: time | None
) -> datetime | None:
    """The UTC instant the user's quiet hours end when `now` falls inside them, else None.

    `start` and `end` are local times in `timezone`; a window may cross midnight (22:00-07:00).
    Equal or missing bounds mean no quiet hours.
    """
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(zone(timezone))
    clock = local.time().replace(tzinfo=None)
    crosses_midnight = start > end
    inside = (clock >= start or clock < end) if crosses_midnight else start <= clock < end
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    # A local end time that a DST change skips resolves to the instant after the gap.
    ends = datetime.combine(day, end, local.tzinfo).astimezone(UTC)
    return max(ends, now.astimezone(UTC))
