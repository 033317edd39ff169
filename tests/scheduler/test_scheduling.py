"""The scheduler against real PostgreSQL and RabbitMQ: due selection, exactly once, catch-up,
restarts and broker outages. Each test has its own database and vhost; clocks are fixed."""

from __future__ import annotations

import asyncio
import urllib.parse
from datetime import date, time, timedelta

import pytest
from sqlalchemy import text

from services.scheduler.config import JOB_ID
from shared.contract import daily_summary_event_id
from tests.scheduler.harness import TcpProxy, changed, put_link, put_links, rows, utc, via_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_each_user_is_triggered_at_their_local_summary_time(env):
    zones = {
        "adelaide": "Australia/Adelaide",  # +10:30: 09:00 local is 22:30 UTC the day before
        "kathmandu": "Asia/Kathmandu",  # +05:45
        "kolkata": "Asia/Kolkata",  # +05:30
        "utc": "UTC",
        "new-york": "America/New_York",  # -05:00
    }
    for user, zone in zones.items():
        await put_link(env.engine, user, timezone=zone)
    await put_link(env.engine, "disabled", enabled=False)
    await put_link(env.engine, "unlinked", chat_id=None)
    await put_link(env.engine, "muted", muted=["daily_summary"])
    await put_link(env.engine, "early-bird", summary_time=time(6, 45))

    replica = await env.replica(utc("2026-02-25T20:00"))
    assert await replica.job.tick() is None  # schedules made, nothing due yet
    assert await env.observer.take(0) == []

    expected = [
        ("2026-02-25T22:30", "adelaide"),
        ("2026-02-26T03:15", "kathmandu"),
        ("2026-02-26T03:30", "kolkata"),
        ("2026-02-26T06:45", "early-bird"),
        ("2026-02-26T09:00", "utc"),
        ("2026-02-26T14:00", "new-york"),
    ]
    for instant, user in expected:
        replica.clock.set(utc(instant) - timedelta(seconds=1))
        assert await replica.job.tick() is None, f"{user} fired early"
        replica.clock.set(utc(instant))
        run = await replica.job.tick()
        assert run is not None and run.emitted == 1 and run.failed == 0
        (trigger,) = await env.observer.take(1)
        assert trigger.event.user_id == user
        assert trigger.data.date == date(2026, 2, 25)  # the local day that just ended
        assert trigger.data.timezone == zones.get(user, "UTC")
        assert trigger.data.resend is False
        assert trigger.event.event_id == daily_summary_event_id(user, date(2026, 2, 25))
        assert trigger.message.message_id == str(trigger.event.event_id)

    replica.clock.set(utc("2026-02-26T20:00"))
    assert await replica.job.tick() is None
    published = await rows(
        env.engine, "SELECT user_id FROM summary_runs WHERE published_at IS NOT NULL"
    )
    assert sorted(u for (u,) in published) == sorted(u for _, u in expected)
    [(next_due,)] = await rows(env.engine, "SELECT min(due_at) FROM summary_schedules")
    assert next_due == utc("2026-02-26T22:30")  # Adelaide's next


async def test_two_replicas_in_the_same_minute_emit_each_trigger_once(env):
    users = [f"user-{i:04d}" for i in range(300)]
    await put_links(env.engine, users)
    settings = changed(env.settings, scheduler_batch_size=25, scheduler_publish_window=10)
    first = await env.replica(utc("2026-02-26T08:59:50"), settings=settings, name="a")
    second = await env.replica(utc("2026-02-26T08:59:55"), settings=settings, name="b")
    await asyncio.gather(first.job.tick(), second.job.tick())  # both reconcile at once

    first.clock.set(utc("2026-02-26T09:00:00"))
    second.clock.set(utc("2026-02-26T09:00:30"))
    runs = await asyncio.gather(first.job.tick(), second.job.tick())
    emitted = sum(r.emitted for r in runs if r is not None)
    assert emitted == len(users)

    triggers = await env.observer.take(len(users))
    assert sorted(t.event.user_id for t in triggers) == users
    # Another minute on both replicas: nothing more.
    first.clock.set(utc("2026-02-26T09:01"))
    second.clock.set(utc("2026-02-26T09:01"))
    await asyncio.gather(first.job.tick(), second.job.tick())
    assert await env.observer.take(0) == []
    [(count, published)] = await rows(
        env.engine, "SELECT count(*), count(published_at) FROM summary_runs"
    )
    assert count == published == len(users)


async def test_a_restart_between_record_and_publish_publishes_once(env, rabbitmq_url):
    """A replica records the due triggers but its broker is gone; a new replica publishes them."""
    await put_links(env.engine, [f"u{i}" for i in range(20)])
    dead_broker = changed(env.settings, rabbitmq_url=via_port(rabbitmq_url, 1))
    crashed = await env.replica(utc("2026-02-26T08:59:58"), settings=dead_broker, connect=False)
    await crashed.job.tick()
    crashed.clock.set(utc("2026-02-26T09:00:01"))
    run = await crashed.job.tick()
    assert run is not None and run.emitted == 0 and run.failed == 20
    pending = await rows(
        env.engine, "SELECT attempts, last_error FROM summary_runs WHERE published_at IS NULL"
    )
    assert len(pending) == 20
    assert all(attempts == 1 and "broker unavailable" in error for attempts, error in pending)
    await crashed.close()  # the replica is gone
    assert await env.observer.take(0) == []

    restarted = await env.replica(utc("2026-02-26T09:02"))
    run = await restarted.job.tick()
    assert run is not None and run.emitted == 20
    assert "recorded" not in run.details  # nothing recorded twice
    assert len(await env.observer.take(20)) == 20
    restarted.clock.set(utc("2026-02-26T09:03"))
    assert await restarted.job.tick() is None
    assert await env.observer.take(0) == []


async def test_a_publish_whose_commit_was_lost_is_resent_with_the_same_event_id(env):
    """The one duplicate the scheduler can produce carries the same id, for the notifier's inbox."""
    await put_link(env.engine, "u1")
    replica = await env.replica(utc("2026-02-26T08:59:58"))
    await replica.job.tick()
    replica.clock.set(utc("2026-02-26T09:00"))
    await replica.job.tick()
    (first,) = await env.observer.take(1)
    async with env.engine.begin() as conn:  # the crash: confirmed, but published_at never saved
        await conn.execute(text("UPDATE summary_runs SET published_at = NULL"))
    replica.clock.set(utc("2026-02-26T09:01"))
    await replica.job.tick()
    (second,) = await env.observer.take(1)
    assert second.event.event_id == first.event.event_id
    assert second.message.body == first.message.body


async def test_catch_up_after_downtime_within_the_grace_only(env):
    await put_link(env.engine, "nine", summary_time=time(9))  # due 5.5 h before restart
    await put_link(env.engine, "eight", summary_time=time(8))  # due 6.5 h before restart
    await put_link(env.engine, "two", summary_time=time(14))  # due 30 min before restart
    before = await env.replica(utc("2026-02-26T07:00"))
    await before.job.tick()
    await before.close()  # down from 07:00 to 14:30

    after = await env.replica(utc("2026-02-26T14:30"))
    run = await after.job.tick()
    assert run is not None
    assert run.emitted == 2
    assert run.details["skipped_late"] == 1
    triggers = await env.observer.take(2)
    assert sorted(t.event.user_id for t in triggers) == ["nine", "two"]
    assert {t.data.date for t in triggers} == {date(2026, 2, 25)}

    # The skipped user is back on schedule the next day; the others too, once each.
    for instant, user in [("08:00", "eight"), ("09:00", "nine"), ("14:00", "two")]:
        after.clock.set(utc(f"2026-02-27T{instant}"))
        run = await after.job.tick()
        assert run is not None and run.emitted == 1
        (trigger,) = await env.observer.take(1)
        assert (trigger.event.user_id, trigger.data.date) == (user, date(2026, 2, 26))
    [(late,)] = await rows(env.engine, "SELECT count(*) FROM summary_runs WHERE user_id = 'eight'")
    assert late == 1  # the day beyond the grace was never recorded


async def test_a_broker_outage_is_retried_until_published(env, rabbitmq_url):
    parsed = urllib.parse.urlsplit(rabbitmq_url)
    proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 5672)
    await proxy.start()
    settings = changed(env.settings, rabbitmq_url=via_port(rabbitmq_url, proxy.port))
    await put_links(env.engine, ["a", "b", "c"])
    replica = await env.replica(utc("2026-02-26T08:59:58"), settings=settings)
    await replica.job.tick()

    await proxy.cut()
    replica.clock.set(utc("2026-02-26T09:00"))
    run = await replica.job.tick()
    # The first failure stops the batch: the rest are left pending without an attempt.
    assert run is not None and run.emitted == 0 and run.failed >= 1
    pending = await rows(
        env.engine, "SELECT attempts, last_error FROM summary_runs WHERE published_at IS NULL"
    )
    assert len(pending) == 3
    assert any(attempts == 1 and error for attempts, error in pending)

    await proxy.start()  # back on the same port
    emitted = 0

    async def published_all() -> bool:
        nonlocal emitted
        replica.clock.advance(timedelta(seconds=10))
        run = await replica.job.tick()
        emitted += run.emitted if run is not None else 0
        return emitted >= 3

    # interval: give the robust connection a moment to reconnect
    await eventually(published_all, 30, 0.2, "triggers published after the broker came back")
    triggers = await env.observer.take(3)
    assert sorted(t.event.user_id for t in triggers) == ["a", "b", "c"]
    [(unpublished, most_attempts)] = await rows(
        env.engine, "SELECT count(*) - count(published_at), max(attempts) FROM summary_runs"
    )
    assert unpublished == 0 and most_attempts >= 2
    await proxy.cut()


async def test_a_changed_summary_time_takes_effect_the_next_day(env):
    await put_link(env.engine, "u", summary_time=time(9))
    replica = await env.replica(utc("2026-02-26T08:00"))
    await replica.job.tick()

    async def the_day_summarised(at: str, not_before: str) -> date:
        """Tick at `not_before` (nothing is due), then at `at` (one summary is): its day."""
        replica.clock.set(utc(not_before))
        assert await replica.job.tick() is None
        replica.clock.set(utc(at))
        assert (await replica.job.tick()).emitted == 1
        (trigger,) = await env.observer.take(1)
        return trigger.data.date

    # At 08:30 the user moves their summary to 08:00: today's 09:00 summary still comes.
    await put_link(env.engine, "u", summary_time=time(8))
    assert await the_day_summarised("2026-02-26T09:00", "2026-02-26T08:30") == date(2026, 2, 25)
    # From tomorrow on, 08:00.
    assert await the_day_summarised("2026-02-27T08:00", "2026-02-27T07:59:59") == date(2026, 2, 26)


async def test_a_disabled_user_is_not_triggered_and_resumes_when_enabled(env):
    await put_link(env.engine, "u")
    replica = await env.replica(utc("2026-02-26T08:00"))
    await replica.job.tick()
    await put_link(env.engine, "u", enabled=False)
    replica.clock.set(utc("2026-02-26T09:00"))
    await replica.job.tick()
    assert await env.observer.take(0) == []
    assert await rows(env.engine, "SELECT * FROM summary_schedules") == []
    await put_link(env.engine, "u", enabled=True)
    replica.clock.set(utc("2026-02-26T10:00"))
    await replica.job.tick()
    replica.clock.set(utc("2026-02-27T09:00"))
    assert (await replica.job.tick()).emitted == 1
    (trigger,) = await env.observer.take(1)
    assert trigger.data.date == date(2026, 2, 26)


async def test_job_runs_record_the_counts(env):
    await put_links(env.engine, ["x", "y"])
    replica = await env.replica(utc("2026-02-26T08:59:59"))
    await replica.job.tick()
    replica.clock.set(utc("2026-02-26T09:00"))
    await replica.job.tick()
    await env.observer.take(2)
    [(job_id, trigger, emitted, failed, details)] = await rows(
        env.engine, "SELECT job_id, trigger, emitted, failed, details FROM job_runs"
    )
    assert (job_id, trigger, emitted, failed) == (JOB_ID, "schedule", 2, 0)
    assert details["recorded"] == 2 and details["instance"] == "replica"
