"""`DailySummaryJob` over in-memory fakes of its ports: each rule of the job on its own, fast.

The real-server tests (test_scheduling, test_admin_api) run the same job on PostgreSQL and
RabbitMQ, with replicas, restarts and outages; these pin what the job asks its ports and when.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.scheduler.admin import UnknownUser
from services.scheduler.clock import FixedClock
from services.scheduler.config import JOB_ID, JobConfig
from services.scheduler.job import DailySummaryJob
from services.scheduler.plan import InvalidResend
from shared.contract import EventType, daily_summary_event_id
from tests.scheduler.fakes import FakePublisher, FakeStore

pytestmark = pytest.mark.unit


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class World:
    job: DailySummaryJob
    store: FakeStore
    publisher: FakePublisher
    clock: FixedClock


def world(now: str = "2026-03-01T08:00", **config: object) -> World:
    store, publisher, clock = FakeStore(), FakePublisher(), FixedClock(utc(now))
    settings: dict[str, object] = {"instance": "unit", **config}
    job = DailySummaryJob(store, publisher, clock, JobConfig(**settings))  # type: ignore[arg-type]
    return World(job, store, publisher, clock)


# ------------------------------------------------------------------------------ the tick
async def test_a_due_trigger_is_recorded_then_published_once() -> None:
    w = world()
    w.store.link("u1")
    assert await w.job.tick() is None  # scheduled for 09:00; nothing to record yet
    assert w.store.schedules["u1"].due_at == utc("2026-03-01T09:00")

    w.clock.set(utc("2026-03-01T09:00"))
    run = await w.job.tick()

    assert run is not None and run.trigger == "schedule" and run.job_id == JOB_ID
    assert (run.emitted, run.failed, run.error) == (1, 0, None)
    assert run.details["recorded"] == 1 and run.details["instance"] == "unit"
    [(event, mandatory)] = w.publisher.published
    assert event.type is EventType.DAILY_SUMMARY and mandatory is True
    assert event.event_id == daily_summary_event_id("u1", date(2026, 2, 28))
    assert event.data == {"date": "2026-02-28", "timezone": "UTC", "resend": False}
    assert w.store.schedules["u1"].due_at == utc("2026-03-02T09:00")
    [row] = w.store.runs_of("u1")
    assert (row.pending.kind, row.attempts, row.published_at) == ("scheduled", 1, w.clock.now())

    assert await w.job.tick() is None
    assert len(w.publisher.published) == 1


async def test_an_unconfirmed_trigger_stays_pending_and_goes_out_the_same_next_tick() -> None:
    w = world("2026-03-01T09:00")
    w.store.link("u1")
    w.publisher.refusing = True

    run = await w.job.tick()

    assert run is not None and (run.emitted, run.failed) == (0, 1)
    [row] = w.store.runs_of("u1")
    assert row.published_at is None and row.attempts == 1
    assert row.last_error == "the broker did not confirm the event"
    assert (await w.job.status())["unpublished_triggers"] == 1

    w.publisher.refusing = False
    w.clock.advance(timedelta(seconds=10))
    run = await w.job.tick()
    assert run is not None and (run.emitted, run.failed) == (1, 0)
    assert run.details.get("recorded") is None  # published, not recorded again
    [event] = w.publisher.events()
    assert event.event_id == daily_summary_event_id("u1", date(2026, 2, 28))
    assert row.attempts == 2 and row.last_error is None


async def test_after_a_refused_publish_no_new_one_starts_in_that_batch() -> None:
    w = world("2026-03-01T09:00", lanes=1, publish_window=1)
    for n in range(5):
        w.store.link(f"u{n}")
    w.publisher.refusing = True

    await w.job.tick()

    assert w.publisher.attempts == 1  # a stalled broker costs one timeout, not five
    attempts = sorted(r.attempts for r in w.store.runs.values())
    assert attempts == [0, 0, 0, 0, 1]


async def test_an_unreachable_broker_fails_the_batch_without_publishing() -> None:
    w = world("2026-03-01T09:00")
    w.store.link("u1")
    w.publisher.connected = w.publisher.reachable = False

    run = await w.job.tick()

    assert run is not None and run.failed == 1 and w.publisher.attempts == 0
    [row] = w.store.runs_of("u1")
    assert row.last_error is not None and row.last_error.startswith("broker unavailable")


async def test_lanes_record_and_publish_each_trigger_exactly_once() -> None:
    w = world("2026-03-01T09:00", lanes=3, batch_size=2, publish_window=2)
    users = [f"u{n}" for n in range(11)]
    for user in users:
        w.store.link(user)

    run = await w.job.tick()

    assert run is not None and run.emitted == 11 and run.details["recorded"] == 11
    assert sorted(e.user_id for e in w.publisher.events()) == sorted(users)
    assert all(len(w.store.runs_of(user)) == 1 for user in users)


async def test_triggers_older_than_the_grace_are_skipped_and_the_schedule_moves_on() -> None:
    w = world("2026-03-01T08:00", catch_up=timedelta(hours=6))
    w.store.link("u1")
    await w.job.tick()
    w.clock.set(utc("2026-03-01T15:30"))  # 6.5 h late: the replicas were down

    run = await w.job.tick()

    assert run is not None and run.details == {
        "instance": "unit",
        "skipped_late": 1,
        "record_seconds": run.details["record_seconds"],
        "publish_seconds": run.details["publish_seconds"],
    }
    assert w.publisher.published == [] and w.store.runs == {}
    assert w.store.schedules["u1"].due_at == utc("2026-03-02T09:00")


async def test_the_schedule_follows_the_links() -> None:
    w = world()
    w.store.link("u1")
    w.store.link("u2", timezone="Asia/Seoul", summary_time=time(8))
    await w.job.tick()
    assert w.store.schedules["u2"].due_at == utc("2026-03-01T23:00")

    w.store.links["u1"].muted = ("daily_summary",)
    w.store.link("u2", timezone="Asia/Seoul", summary_time=time(21))
    await w.job.tick()

    assert "u1" not in w.store.schedules
    # 17:00 in Seoul: the pending trigger is tomorrow's 08:00; it moves to tomorrow 21:00.
    assert w.store.schedules["u2"].due_at == utc("2026-03-02T12:00")


async def test_one_replica_at_a_time_reconciles() -> None:
    w = world()
    w.store.link("u1")
    w.store.sync_held_elsewhere = True
    assert await w.job.sync(w.clock.now()) is False
    assert w.store.schedules == {}
    w.store.sync_held_elsewhere = False
    assert await w.job.sync(w.clock.now()) is True
    assert "u1" in w.store.schedules


async def test_a_failing_tick_rolls_back_and_records_its_error() -> None:
    w = world("2026-03-01T09:00")
    w.store.link("u1")
    await w.job.sync(w.clock.now())
    before = dict(w.store.schedules)
    w.store.fail["advance"] = OSError("the database went away")

    with pytest.raises(OSError):
        await w.job.tick()

    assert w.store.schedules == before and w.store.runs_of("u1") == []
    [job_run] = w.store.job_runs.values()
    assert job_run.error == "OSError: the database went away" and job_run.finished_at


async def test_run_forever_retries_a_failed_tick_and_stops_when_told() -> None:
    w = world("2026-03-01T09:00", tick=timedelta(milliseconds=5))
    w.store.link("u1")
    w.store.fail["differences"] = OSError("the database went away")
    stop = asyncio.Event()
    loop = asyncio.create_task(w.job.run_forever(stop))
    await asyncio.sleep(0.02)
    assert w.job.running and w.publisher.published == []

    del w.store.fail["differences"]
    async with asyncio.timeout(5):
        while not w.publisher.published:
            await asyncio.sleep(0.005)
    stop.set()
    await loop
    assert not w.job.running and len(w.publisher.published) == 1


# ------------------------------------------------------------------- the admin's actions
async def test_trigger_all_sends_each_users_last_day_once() -> None:
    w = world("2026-03-01T07:00")
    w.store.link("u1")
    w.store.link("kolkata", timezone="Asia/Kolkata")
    w.store.link("paused", enabled=False)

    run = await w.job.trigger_all()

    assert run.trigger == "manual" and run.emitted == 2
    assert run.details["users"] == 2 and run.details["recorded"] == 2
    days = {e.user_id: e.data["date"] for e in w.publisher.events()}
    assert days == {"u1": "2026-02-28", "kolkata": "2026-02-28"}

    again = await w.job.trigger_all()
    assert again.emitted == 0 and again.details["already_recorded"] == 2
    w.clock.set(utc("2026-03-01T09:00"))
    await w.job.tick()  # the scheduled trigger of that day is not emitted again
    assert len(w.publisher.published) == 2


async def test_a_resend_has_a_fresh_event_id_and_replaces_the_earlier_resend() -> None:
    w = world("2026-03-01T10:00")
    w.store.link("u1")

    first = await w.job.resend("u1", date(2026, 2, 27))
    second = await w.job.resend("u1", date(2026, 2, 27))

    assert first.published and second.published
    assert first.run.event_id != second.run.event_id
    assert first.job_run.details["event_id"] == str(first.run.event_id)
    events = w.publisher.events()
    assert [e.event_id for e in events] == [first.run.event_id, second.run.event_id]
    assert all(e.data["resend"] is True and e.data["date"] == "2026-02-27" for e in events)
    [row] = w.store.runs_of("u1")
    assert (row.pending.kind, row.pending.event_id) == ("resend", second.run.event_id)


async def test_a_resend_the_broker_refuses_is_recorded_and_published_later() -> None:
    w = world("2026-03-01T10:00")
    w.store.link("u1", enabled=False)  # a resend needs a link, not an active one
    w.publisher.refusing = True

    outcome = await w.job.resend("u1")

    assert not outcome.published and outcome.run.summary_date == date(2026, 2, 28)
    w.publisher.refusing = False
    await w.job.tick()
    assert [e.event_id for e in w.publisher.events()] == [outcome.run.event_id]


async def test_a_resend_needs_a_linked_user_and_a_day_that_has_begun() -> None:
    w = world("2026-03-01T10:00")
    w.store.link("u1")
    with pytest.raises(UnknownUser):
        await w.job.resend("nobody")
    with pytest.raises(InvalidResend):
        await w.job.resend("u1", date(2026, 3, 2))
    assert w.store.job_runs == {} and w.publisher.published == []


async def test_status_and_history() -> None:
    w = world("2026-03-01T09:00")
    w.store.link("u1")
    w.store.link("u2", summary_time=time(10))
    first = await w.job.tick()
    w.clock.set(utc("2026-03-01T10:00"))
    second = await w.job.tick()
    assert first is not None and second is not None

    status = await w.job.status()
    assert status["id"] == JOB_ID and status["scheduled_users"] == 2
    assert status["next_run_time"] == "2026-03-02T09:00:00+00:00"
    assert status["unpublished_triggers"] == 0
    assert [r["id"] for r in status["last_runs"]] == [second.id, first.id]

    page, total = await w.job.history(None, 2, 1)
    assert total == 2 and [r.id for r in page] == [first.id]
    assert await w.job.history("another_job", 1, 20) == ([], 0)
