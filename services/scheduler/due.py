"""When a user's daily summary is due: pure functions of a time zone, a time of day and an instant.

The trigger for local day D (the day being summarised) is due at the user's summary time on local
day D + 1. "Due at wall-clock time L" means the first instant whose local wall-clock time is at or
after L, which settles every daylight-saving case with one rule:

- a summary time inside a DST gap (02:30 when clocks jump from 02:00 to 03:00) is due at the first
  valid instant after it, the transition itself (03:00);
- a summary time inside a DST overlap (01:30 when clocks fall back from 02:00 to 01:00) is due at
  its first occurrence only, so the day still gets exactly one trigger.

Every instant here is timezone-aware; results are in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ONE_DAY = timedelta(days=1)


class InvalidTimeZone(ValueError):
    """A time zone name that is not a known IANA zone."""


@dataclass(frozen=True, slots=True)
class Due:
    """One trigger: the local day it summarises and the UTC instant it is due."""

    summary_date: date
    due_at: datetime


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; raises `InvalidTimeZone` for anything else."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidTimeZone(f"{name!r} is not an IANA time zone") from exc


def is_valid_timezone(name: str) -> bool:
    """True when `name` is a known IANA zone."""
    try:
        zone(name)
    except InvalidTimeZone:
        return False
    return True


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def local_date(instant: datetime, timezone: str) -> date:
    """The calendar date in `timezone` at `instant`."""
    return instant.astimezone(zone(timezone)).date()


@lru_cache(maxsize=65536)
def due_at(timezone: str, summary_time: time, summary_date: date) -> datetime:
    """When the summary of `summary_date` is due (UTC): `summary_time` on the next local day."""
    tz = zone(timezone)
    wall = datetime.combine(summary_date + ONE_DAY, summary_time)
    earlier = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(earlier, tz) == wall:
        return earlier  # the wall time exists; in an overlap fold=0 is its first occurrence
    # In a gap the two folds read the wall time with the offsets on either side of the
    # transition; the transition lies between them. Find it to the second.
    other = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    before = int(min(earlier, other).timestamp())
    after = int(max(earlier, other).timestamp())
    while after - before > 1:
        middle = (before + after) // 2
        if _wall(datetime.fromtimestamp(middle, UTC), tz) >= wall:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


def latest_due(timezone: str, summary_time: time, now: datetime) -> Due:
    """The most recent trigger due at or before `now`."""
    day = local_date(now, timezone)
    while (at := due_at(timezone, summary_time, day)) > now:
        day -= ONE_DAY
    return Due(day, at)


def next_due(timezone: str, summary_time: time, after: datetime) -> Due:
    """The first trigger due strictly after `after`."""
    day = local_date(after, timezone) - 2 * ONE_DAY
    while (at := due_at(timezone, summary_time, day)) <= after:
        day += ONE_DAY
    return Due(day, at)


def following(timezone: str, summary_time: time, summary_date: date, not_before: datetime) -> Due:
    """The trigger after the one for `summary_date`, skipping any due at or before `not_before`.

    Normally that is the next local day; after a downtime longer than the catch-up grace
    (`not_before` = now - grace) it is the first day whose trigger is still inside the grace.
    """
    day = max(summary_date + ONE_DAY, local_date(not_before, timezone) - 2 * ONE_DAY)
    while (at := due_at(timezone, summary_time, day)) <= not_before:
        day += ONE_DAY
    return Due(day, at)


def rescheduled(
    pending: Due,
    old: tuple[str, time],
    new: tuple[str, time],
    now: datetime,
) -> Due:
    """Where the pending trigger goes when a user changes (zone, summary time): the next day.

    The trigger due on the user's current local day (or already overdue) keeps its time, so a
    change never skips or repeats a day. A trigger due on a later day (today's summary has
    already gone out) moves to the new settings, though never into the past.
    """
    old_zone, _ = old
    if local_date(pending.due_at, old_zone) <= local_date(now, old_zone):
        return pending
    moved = due_at(new[0], new[1], pending.summary_date)
    return Due(pending.summary_date, max(moved, now))
