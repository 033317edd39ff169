"""The scheduler's decisions over rows: reconciling, firing, the manual trigger, the event."""

import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.scheduler.clock import FixedClock
from services.scheduler.plan import (
    DueRow,
    InvalidResend,
    LinkSettings,
    PendingRun,
    ScheduleEntry,
    SyncPlan,
    SyncRow,
    plan_due,
    plan_resend,
    plan_sync,
    plan_trigger_all,
    trigger_event,
)
from shared.contract import DailySummaryData, EventType, daily_summary_event_id, parse_event

pytestmark = pytest.mark.unit

GRACE = timedelta(hours=6)
LINK = LinkSettings("u1", "UTC", time(9))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def entry(user="u1", zone="UTC", at=time(9), day="2026-02-25", due="2026-02-26T09:00"):
    return ScheduleEntry(user, zone, at, date.fromisoformat(day), utc(due))


class TestPlanSync:
    def test_a_new_link_is_scheduled_for_its_next_summary_time(self):
        now = utc("2026-02-26T08:00")
        plan = plan_sync(
            [SyncRow(LinkSettings("new", "Asia/Kolkata", time(9)), None)],
            now,
            now - timedelta(seconds=10),
        )
        assert plan.add == [
            ScheduleEntry(
                "new", "Asia/Kolkata", time(9), date(2026, 2, 26), utc("2026-02-27T03:30")
            )
        ]
        assert not plan.move and not plan.remove

    def test_a_link_made_just_before_its_time_is_due_at_once(self):
        """The previous tick ran at 08:59:55; the link came at 08:59:58; this tick is 09:00:05."""
        now = utc("2026-02-26T09:00:05")
        plan = plan_sync(
            [SyncRow(LinkSettings("u", "UTC", time(9)), None)], now, utc("2026-02-26T08:59:55")
        )
        assert plan.add[0].due_at == utc("2026-02-26T09:00")

    def test_a_gone_link_is_unscheduled(self):
        plan = plan_sync(
            [SyncRow(None, entry("gone"))], utc("2026-02-26T08:00"), utc("2026-02-26T08:00")
        )
        assert plan.remove == ["gone"]

    def test_a_changed_time_moves_only_tomorrows_trigger(self):
        now = utc("2026-02-26T10:00")
        pending = entry(day="2026-02-26", due="2026-02-27T09:00")
        plan = plan_sync([SyncRow(LinkSettings("u1", "UTC", time(21)), pending)], now, now)
        assert plan.move == [
            (
                pending,
                ScheduleEntry("u1", "UTC", time(21), date(2026, 2, 26), utc("2026-02-27T21:00")),
            )
        ]

    def test_a_changed_time_leaves_todays_trigger_alone(self):
        now = utc("2026-02-26T08:30")
        plan = plan_sync([SyncRow(LinkSettings("u1", "UTC", time(8)), entry())], now, now)
        assert plan == SyncPlan()  # the row keeps the settings its trigger was computed with

    def test_an_unknown_zone_is_scheduled_in_utc_and_reported(self):
        now = utc("2026-02-26T08:00")
        plan = plan_sync([SyncRow(LinkSettings("u", "Mars/Base", time(9)), None)], now, now)
        assert plan.add[0].due_at == utc("2026-02-26T09:00")
        assert plan.invalid_zones == {"u": "Mars/Base"}


class TestPlanDue:
    def test_a_due_trigger_is_recorded_with_its_deterministic_id_and_advanced(self):
        now = utc("2026-02-26T09:00:03")
        plan = plan_due([DueRow(entry(), LINK)], now, GRACE)
        (run,) = plan.record
        assert (run.user_id, run.summary_date, run.due_at) == (
            "u1",
            date(2026, 2, 25),
            utc("2026-02-26T09:00"),
        )
        assert run.event_id == daily_summary_event_id("u1", date(2026, 2, 25))
        assert plan.advance == [entry(day="2026-02-26", due="2026-02-27T09:00")]

    def test_catch_up_within_the_grace(self):
        plan = plan_due([DueRow(entry(), LINK)], utc("2026-02-26T14:59"), GRACE)
        assert len(plan.record) == 1 and not plan.late

    def test_beyond_the_grace_is_skipped_and_the_schedule_moves_on(self):
        plan = plan_due([DueRow(entry(), LINK)], utc("2026-02-26T15:00"), GRACE)
        assert not plan.record
        assert plan.late == [entry()]
        assert plan.advance[0].summary_date == date(2026, 2, 26)

    def test_the_next_trigger_uses_the_links_current_settings(self):
        """Changed from UTC 09:00 to Kolkata 08:00 before today's trigger: today's goes out as
        computed (in UTC), the next one at 08:00 in Kolkata."""
        link = LinkSettings("u1", "Asia/Kolkata", time(8))
        plan = plan_due([DueRow(entry(), link)], utc("2026-02-26T09:00"), GRACE)
        assert (plan.record[0].summary_date, plan.record[0].timezone) == (date(2026, 2, 25), "UTC")
        assert plan.advance == [
            ScheduleEntry("u1", "Asia/Kolkata", time(8), date(2026, 2, 26), utc("2026-02-27T02:30"))
        ]

    def test_a_disabled_link_is_unscheduled_not_triggered(self):
        plan = plan_due([DueRow(entry(), None)], utc("2026-02-26T09:00"), GRACE)
        assert plan.remove == ["u1"] and not plan.record and not plan.advance

    def test_the_date_is_the_local_day_that_just_ended(self):
        kathmandu = entry(zone="Asia/Kathmandu", day="2026-02-25", due="2026-02-26T03:15")
        plan = plan_due(
            [DueRow(kathmandu, LinkSettings("u1", "Asia/Kathmandu", time(9)))],
            utc("2026-02-26T03:15"),
            GRACE,
        )
        assert plan.record[0].summary_date == date(2026, 2, 25)
        assert plan.record[0].timezone == "Asia/Kathmandu"
        assert plan.advance[0].due_at == utc("2026-02-27T03:15")


def test_trigger_all_summarises_each_users_last_complete_local_day():
    now = utc("2026-02-26T20:00")  # already the 27th in Tokyo, still the 26th in New York
    runs = plan_trigger_all(
        [
            LinkSettings("tokyo", "Asia/Tokyo", time(9)),
            LinkSettings("ny", "America/New_York", time(9)),
        ],
        now,
    )
    assert [(r.user_id, r.summary_date) for r in runs] == [
        ("tokyo", date(2026, 2, 26)),
        ("ny", date(2026, 2, 25)),
    ]
    assert all(r.event_id == daily_summary_event_id(r.user_id, r.summary_date) for r in runs)


def test_resend_defaults_to_the_last_complete_day_and_refuses_the_future():
    link = LinkSettings("u", "Asia/Kolkata", time(9))
    now = utc("2026-02-26T20:00")  # 01:30 on the 27th in Kolkata
    event_id = uuid.uuid4()
    assert plan_resend(link, None, now, event_id).summary_date == date(2026, 2, 26)
    assert plan_resend(link, date(2026, 2, 27), now, event_id).summary_date == date(2026, 2, 27)
    with pytest.raises(InvalidResend):
        plan_resend(link, date(2026, 2, 28), now, event_id)


@pytest.mark.parametrize("kind", ["scheduled", "resend"])
def test_trigger_event_follows_the_contract(kind):
    run = PendingRun(
        1, "123", date(2026, 2, 25), kind, uuid.uuid4(), utc("2026-02-26T03:30"), "Asia/Kolkata"
    )
    event = trigger_event(run)
    parsed, data = parse_event(event.to_json())
    assert parsed.type is EventType.DAILY_SUMMARY
    assert parsed.event_id == run.event_id and parsed.user_id == "123"
    assert parsed.occurred_at == run.due_at
    assert isinstance(data, DailySummaryData)
    assert data.date == date(2026, 2, 25) and data.timezone == "Asia/Kolkata"
    assert data.resend is (kind == "resend")
    assert not data.has_totals  # the notifier aggregates the day itself
    assert trigger_event(run).to_json() == event.to_json()  # a retry sends the same bytes


def test_fixed_clock():
    clock = FixedClock(utc("2026-02-26T09:00"))
    clock.advance(timedelta(minutes=1))
    assert clock.now() == utc("2026-02-26T09:01")
    with pytest.raises(ValueError):
        clock.set(datetime(2026, 2, 26, 9))
