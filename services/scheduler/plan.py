"""The scheduler's decisions, as pure functions of rows and an instant (no I/O).

- `plan_sync`: reconcile the schedule with the links (new link, gone link, changed settings).
- `plan_due`: for due schedule rows, which triggers to record and where each schedule goes next.
- `plan_trigger_all`, `plan_resend`: the admin API's manual trigger and deliberate resend.
- `trigger_event`: the `daily_summary` event of a recorded run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from services.scheduler.due import (
    ONE_DAY,
    Due,
    following,
    is_valid_timezone,
    local_date,
    next_due,
    rescheduled,
)
from shared.contract import Event, EventType, daily_summary_event_id

FALLBACK_TIMEZONE = "UTC"


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """A linked user's schedule settings, as the linker stores them."""

    user_id: str
    timezone: str
    summary_time: time


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """A row of `summary_schedules`: a pending trigger and the settings it was computed with."""

    user_id: str
    timezone: str
    summary_time: time
    summary_date: date
    due_at: datetime

    @property
    def due(self) -> Due:
        """The pending trigger as a `Due`."""
        return Due(self.summary_date, self.due_at)


@dataclass(frozen=True, slots=True)
class SyncRow:
    """A user whose active link and schedule row disagree (either may be missing)."""

    link: LinkSettings | None
    schedule: ScheduleEntry | None


@dataclass(frozen=True, slots=True)
class DueRow:
    """A due schedule row, and its link's current settings (None: it wants no summaries now)."""

    entry: ScheduleEntry
    link: LinkSettings | None


@dataclass(frozen=True, slots=True)
class NewRun:
    """A summary run to record before its trigger is published."""

    user_id: str
    summary_date: date
    event_id: uuid.UUID
    due_at: datetime
    timezone: str


@dataclass(frozen=True, slots=True)
class PendingRun:
    """A recorded summary run whose trigger the broker has not confirmed yet."""

    id: int
    user_id: str
    summary_date: date
    kind: str
    event_id: uuid.UUID
    due_at: datetime
    timezone: str


def usable_timezone(name: str) -> str:
    """`name` if it is an IANA zone, else UTC (the linker rejects bad zones; this is a backstop)."""
    return name if is_valid_timezone(name) else FALLBACK_TIMEZONE


@dataclass
class SyncPlan:
    """What reconciling the schedule with the links changes."""

    add: list[ScheduleEntry] = field(default_factory=list)
    move: list[tuple[ScheduleEntry, ScheduleEntry]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    invalid_zones: dict[str, str] = field(default_factory=dict)


def plan_sync(rows: Iterable[SyncRow], now: datetime, seen_after: datetime) -> SyncPlan:
    """Schedule new links, reschedule changed ones (effective the next day), drop gone ones.

    A new link's first trigger is the first one due after `seen_after` (the previous tick), so a
    link made just before its summary time is not missed.
    """
    plan = SyncPlan()
    for row in rows:
        link, schedule = row.link, row.schedule
        if link is None:
            if schedule is not None:
                plan.remove.append(schedule.user_id)
            continue
        zone = usable_timezone(link.timezone)
        if zone != link.timezone:
            plan.invalid_zones[link.user_id] = link.timezone
        if schedule is None:
            first = next_due(zone, link.summary_time, seen_after)
            plan.add.append(
                ScheduleEntry(
                    link.user_id, link.timezone, link.summary_time, first.summary_date, first.due_at
                )
            )
            continue
        old = (usable_timezone(schedule.timezone), schedule.summary_time)
        pending = rescheduled(schedule.due, old, (zone, link.summary_time), now)
        if pending == schedule.due:
            continue  # kept, with the settings it was computed with; the next one uses the new
        moved = ScheduleEntry(
            link.user_id, link.timezone, link.summary_time, pending.summary_date, pending.due_at
        )
        plan.move.append((schedule, moved))
    return plan


@dataclass
class DuePlan:
    """What firing a batch of due schedule rows does."""

    record: list[NewRun] = field(default_factory=list)
    advance: list[ScheduleEntry] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    late: list[ScheduleEntry] = field(default_factory=list)


def plan_due(rows: Iterable[DueRow], now: datetime, grace: timedelta) -> DuePlan:
    """Record each due trigger still within the grace, skip older ones, and advance every row.

    A trigger is recorded in the zone it was computed in (so its date and zone agree); the next
    one uses the link's current settings, which is how a change takes effect the next day. A
    row whose link no longer wants summaries is dropped instead.
    """
    oldest = now - grace
    plan = DuePlan()
    # Users share a few (zone, time, day) combinations: compute each next trigger once.
    nexts: dict[tuple[str, time, date], Due] = {}
    for row in rows:
        entry, link = row.entry, row.link
        if link is None:
            plan.remove.append(entry.user_id)
            continue
        if entry.due_at > oldest:
            plan.record.append(
                NewRun(
                    entry.user_id,
                    entry.summary_date,
                    daily_summary_event_id(entry.user_id, entry.summary_date),
                    entry.due_at,
                    usable_timezone(entry.timezone),
                )
            )
        else:
            plan.late.append(entry)
        key = (usable_timezone(link.timezone), link.summary_time, entry.summary_date)
        if (after := nexts.get(key)) is None:
            after = nexts[key] = following(*key, oldest)
        plan.advance.append(
            ScheduleEntry(
                entry.user_id, link.timezone, link.summary_time, after.summary_date, after.due_at
            )
        )
    return plan


def plan_trigger_all(links: Iterable[LinkSettings], now: datetime) -> list[NewRun]:
    """The manual run: each user's trigger for their last complete local day, due now.

    Recorded as the scheduled run of that day, so a user who already had it gets nothing and
    the scheduled one, when its time comes, is not emitted again.
    """
    runs = []
    for link in links:
        zone = usable_timezone(link.timezone)
        day = local_date(now, zone) - ONE_DAY
        runs.append(NewRun(link.user_id, day, daily_summary_event_id(link.user_id, day), now, zone))
    return runs


class InvalidResend(ValueError):
    """A resend that cannot be made (for example a date that has not begun for the user)."""


def plan_resend(link: LinkSettings, day: date | None, now: datetime, event_id: uuid.UUID) -> NewRun:
    """A deliberate resend of one user's summary (default: their last complete local day)."""
    zone = usable_timezone(link.timezone)
    today = local_date(now, zone)
    if day is None:
        day = today - ONE_DAY
    if day > today:
        raise InvalidResend(f"{day} has not begun yet in the user's time zone ({zone})")
    return NewRun(link.user_id, day, event_id, now, zone)


def trigger_event(run: PendingRun) -> Event:
    """The `daily_summary` event of a recorded run (the same bytes on every retry)."""
    # The data is a valid DailySummaryData by construction (unit-tested), so only the envelope
    # is validated here: this runs once per trigger, 100,000 times at 09:00 UTC.
    return Event(
        event_id=run.event_id,
        type=EventType.DAILY_SUMMARY,
        user_id=run.user_id,
        occurred_at=run.due_at,
        data={
            "date": run.summary_date.isoformat(),
            "timezone": run.timezone,
            "resend": run.kind == "resend",
        },
    )
