"""The due-time arithmetic: half-hour zones, DST gaps and overlaps, catch-up, setting changes."""

from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.scheduler.due import (
    Due,
    InvalidTimeZone,
    due_at,
    following,
    is_valid_timezone,
    latest_due,
    local_date,
    next_due,
    rescheduled,
    zone,
)

pytestmark = pytest.mark.unit


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("timezone", "summary_time", "summary_date", "expected"),
    [
        # The spec's default: 09:00 UTC, summarising the previous day.
        ("UTC", "09:00", "2026-02-25", "2026-02-26T09:00"),
        # Half- and quarter-hour zones.
        ("Asia/Kolkata", "09:00", "2026-02-25", "2026-02-26T03:30"),
        ("Asia/Kathmandu", "09:00", "2026-02-25", "2026-02-26T03:15"),
        ("Australia/Adelaide", "09:00", "2026-02-25", "2026-02-25T22:30"),  # +10:30 (summer)
        ("Australia/Adelaide", "09:00", "2026-06-30", "2026-06-30T23:30"),  # +09:30 (winter)
        ("Asia/Tokyo", "00:00", "2026-02-25", "2026-02-25T15:00"),
        ("Pacific/Kiritimati", "09:00", "2026-02-25", "2026-02-25T19:00"),  # +14
        ("Pacific/Pago_Pago", "23:59", "2026-02-25", "2026-02-27T10:59"),  # -11
        # DST gaps: the first valid instant after the missing wall time (the transition).
        ("America/New_York", "02:30", "2026-03-07", "2026-03-08T07:00"),  # 03:00 EDT
        ("Europe/London", "01:30", "2026-03-28", "2026-03-29T01:00"),  # 02:00 BST
        ("Australia/Adelaide", "02:30", "2026-10-03", "2026-10-03T16:30"),  # 03:00 ACDT
        ("Australia/Lord_Howe", "02:15", "2026-10-03", "2026-10-03T15:30"),  # 30-minute gap
        ("Pacific/Chatham", "03:00", "2026-09-26", "2026-09-26T14:00"),  # 03:45 +13:45
        # A wall time just outside the gap is unaffected.
        ("America/New_York", "03:00", "2026-03-07", "2026-03-08T07:00"),
        ("America/New_York", "01:59", "2026-03-07", "2026-03-08T06:59"),
        # DST overlaps: the first occurrence only.
        ("America/New_York", "01:30", "2026-10-31", "2026-11-01T05:30"),  # EDT, not EST
        ("Europe/London", "01:30", "2026-10-24", "2026-10-25T00:30"),  # BST, not GMT
        ("Australia/Adelaide", "02:30", "2026-04-04", "2026-04-04T16:00"),  # ACDT
        ("Australia/Lord_Howe", "01:45", "2026-04-04", "2026-04-04T14:45"),  # 30-minute overlap
        # A day that never happened (Samoa skipped 2011-12-30): due when the next day begins.
        ("Pacific/Apia", "09:00", "2011-12-29", "2011-12-30T10:00"),
    ],
)
def test_due_at(timezone, summary_time, summary_date, expected):
    due = due_at(timezone, time.fromisoformat(summary_time), date.fromisoformat(summary_date))
    assert due == utc(expected)
    assert due.tzinfo is UTC


LATEST = [
    ("UTC", "09:00", "2026-02-26T09:00:00", "2026-02-25", "2026-02-26T09:00"),  # at due
    ("UTC", "09:00", "2026-02-26T08:59:59", "2026-02-24", "2026-02-25T09:00"),  # just before
    ("UTC", "09:00", "2026-02-26T23:59:59", "2026-02-25", "2026-02-26T09:00"),
    ("Asia/Kolkata", "09:00", "2026-02-26T03:30", "2026-02-25", "2026-02-26T03:30"),
    ("Asia/Kolkata", "09:00", "2026-02-26T03:29", "2026-02-24", "2026-02-25T03:30"),
    ("Asia/Kathmandu", "00:00", "2026-02-25T18:15", "2026-02-25", "2026-02-25T18:15"),
    # At 22:30 UTC it is already the 26th in Adelaide: the 25th is summarised.
    ("Australia/Adelaide", "09:00", "2026-02-25T22:30", "2026-02-25", "2026-02-25T22:30"),
    ("Australia/Adelaide", "09:00", "2026-02-25T22:29", "2026-02-24", "2026-02-24T22:30"),
    # West of UTC the local date lags: at 03:00 UTC on the 26th it is still the 25th in NY.
    ("America/New_York", "09:00", "2026-02-26T03:00", "2026-02-24", "2026-02-25T14:00"),
    # Spring forward: the 02:30 summary fires at the transition, 07:00 UTC.
    ("America/New_York", "02:30", "2026-03-08T07:00", "2026-03-07", "2026-03-08T07:00"),
    ("America/New_York", "02:30", "2026-03-08T06:59:59", "2026-03-06", "2026-03-07T07:30"),
]
"""(zone, summary time, now, the day summarised, its due instant): the latest due at or before now."""

NEXT = [
    ("UTC", "09:00", "2026-02-26T09:00", "2026-02-26", "2026-02-27T09:00"),  # strictly after
    ("UTC", "09:00", "2026-02-26T08:59", "2026-02-25", "2026-02-26T09:00"),
    ("Asia/Kathmandu", "09:00", "2026-02-26T03:14", "2026-02-25", "2026-02-26T03:15"),
    ("America/New_York", "01:30", "2026-11-01T05:30", "2026-11-01", "2026-11-02T06:30"),
]
"""(zone, summary time, after, the day summarised, its due instant): the next due after `after`."""


@pytest.mark.parametrize(
    ("find", "timezone", "summary_time", "at", "summary_date", "due"),
    [(latest_due, *case) for case in LATEST] + [(next_due, *case) for case in NEXT],
)
def test_latest_and_next_due(find, timezone, summary_time, at, summary_date, due):
    result = find(timezone, time.fromisoformat(summary_time), utc(at))
    assert result == Due(date.fromisoformat(summary_date), utc(due))


ZONES = [
    "UTC",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/New_York",
    "America/Santiago",
    "Europe/London",
    "Europe/Berlin",
    "Africa/Casablanca",
    "Asia/Tehran",
]
TIMES = ["00:00", "00:30", "01:30", "02:00", "02:30", "03:00", "09:00", "23:59"]


@pytest.mark.parametrize("timezone", ZONES)
def test_a_year_of_triggers_is_one_per_local_day(timezone):
    """Walking through 2026 for every time: each local day once, in order, at its time or the
    first valid instant after it."""
    tz = zone(timezone)
    for summary_time in (time.fromisoformat(t) for t in TIMES):
        instant = utc("2025-12-31T00:00")
        previous = next_due(timezone, summary_time, instant)
        for _ in range(366):
            current = next_due(timezone, summary_time, previous.due_at)
            assert current.summary_date == previous.summary_date + timedelta(days=1)
            assert current.due_at > previous.due_at
            wall = current.due_at.astimezone(tz)
            assert wall.date() == current.summary_date + timedelta(days=1)
            target = datetime.combine(wall.date(), summary_time)
            shifted = wall.replace(tzinfo=None) - target
            # On time, or (in a DST gap) moved forward by less than the gap.
            assert timedelta(0) <= shifted <= timedelta(hours=1), (timezone, summary_time, wall)
            if shifted:
                just_before = (current.due_at - timedelta(seconds=1)).astimezone(tz)
                assert just_before.replace(tzinfo=None) < target  # the gap really was there
            previous = current


def test_overlap_fires_once_not_on_the_repeated_hour():
    """New York falls back at 02:00 EDT to 01:00 EST: 01:30 happens twice, the trigger once."""
    summary_time = time(1, 30)
    first = due_at("America/New_York", summary_time, date(2026, 10, 31))
    assert first == utc("2026-11-01T05:30")
    # One hour later the wall clock shows 01:30 again; nothing is due then.
    assert next_due("America/New_York", summary_time, first).due_at == utc("2026-11-02T06:30")
    assert latest_due("America/New_York", summary_time, utc("2026-11-01T06:30")) == Due(
        date(2026, 10, 31), first
    )


@pytest.mark.parametrize(
    ("summary_date", "now", "grace_hours", "expected_date"),
    [
        # Normal advance: the next day.
        ("2026-02-25", "2026-02-26T09:00", 6, "2026-02-26"),
        # Down for two days: the 27th's trigger (due 28th 09:00) is 4 h old, inside the grace.
        ("2026-02-25", "2026-02-28T13:00", 6, "2026-02-27"),
        # 7 h old is beyond the grace: the first trigger still inside it is tomorrow's.
        ("2026-02-25", "2026-02-28T16:00", 6, "2026-02-28"),
        # Back before today's summary time: today's trigger is still to come.
        ("2026-02-25", "2026-02-28T08:00", 6, "2026-02-27"),
        ("2026-02-25", "2026-03-30T08:00", 6, "2026-03-29"),
    ],
)
def test_following_skips_triggers_older_than_the_grace(
    summary_date, now, grace_hours, expected_date
):
    moment = utc(now)
    result = following(
        "UTC", time(9), date.fromisoformat(summary_date), moment - timedelta(hours=grace_hours)
    )
    assert result.summary_date == date.fromisoformat(expected_date)
    assert result.due_at > moment - timedelta(hours=grace_hours)


class TestRescheduled:
    """A change of zone or time takes effect the next day: never a skipped or repeated day."""

    def test_todays_pending_trigger_keeps_its_time(self):
        pending = Due(date(2026, 2, 25), utc("2026-02-26T09:00"))
        now = utc("2026-02-26T08:30")  # today's summary is still to come
        result = rescheduled(pending, ("UTC", time(9)), ("UTC", time(8)), now)
        assert result == pending

    def test_tomorrows_pending_trigger_moves_to_the_new_time(self):
        pending = Due(date(2026, 2, 26), utc("2026-02-27T09:00"))
        now = utc("2026-02-26T10:00")  # today's summary has gone out
        result = rescheduled(pending, ("UTC", time(9)), ("UTC", time(21)), now)
        assert result == Due(date(2026, 2, 26), utc("2026-02-27T21:00"))

    def test_a_new_zone_applies_to_the_next_day(self):
        pending = Due(date(2026, 2, 26), utc("2026-02-27T09:00"))
        now = utc("2026-02-26T10:00")
        result = rescheduled(pending, ("UTC", time(9)), ("Asia/Kolkata", time(9)), now)
        assert result == Due(date(2026, 2, 26), utc("2026-02-27T03:30"))

    def test_never_moves_into_the_past(self):
        pending = Due(date(2026, 2, 26), utc("2026-02-27T17:00"))  # 09:00 Los Angeles
        now = utc("2026-02-26T18:00")  # 10:00 in Los Angeles, already the 27th in Kiritimati
        result = rescheduled(
            pending, ("America/Los_Angeles", time(9)), ("Pacific/Kiritimati", time(7)), now
        )
        assert result == Due(date(2026, 2, 26), now)


def test_time_zone_names_are_checked():
    assert is_valid_timezone("Asia/Kathmandu")
    assert not is_valid_timezone("Mars/Olympus_Mons")
    assert not is_valid_timezone("../etc/passwd")
    with pytest.raises(InvalidTimeZone):
        zone("Not/AZone")
    assert local_date(utc("2026-02-26T20:00"), "Asia/Tokyo") == date(2026, 2, 27)
