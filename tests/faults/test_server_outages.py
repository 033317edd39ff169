"""RabbitMQ, then PostgreSQL, stopped and started again in the middle of a stream of events.

These restart the local servers every other test uses too: the restart is always undone (in a
`finally`), the test waits until the server answers again, and the downtime is kept short.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.faults.harness import (
    drain_dlq,
    make_users,
    marked_events,
    notifier,
    postgres_restartable,
    postgres_stopped,
    publish_reliably,
    rabbitmq_restartable,
    rabbitmq_stopped,
    report,
    settled,
    size,
    tally,
)
from tests.support.links import seed_links
from tests.support.standin import standin_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

EVENTS = size(3000, 1500)
RATE = 150  # events/s: the stream lasts EVENTS / RATE seconds, the outage happens inside it
DOWN_SECONDS = 2.0
LIFTED = {"telegram_rate_global": 0, "telegram_rate_per_chat": 0}


async def _stream_through_outage(
    name: str,
    database_url: str,
    rabbitmq_url: str,
    log_dir: Path,
    outage: Callable[[], AbstractAsyncContextManager[None]],
) -> None:
    tag = f"{name.split()[0].lower()}-{uuid.uuid4().hex[:6]}"
    users = make_users(300, tag)
    await seed_links(database_url, users)
    marked = marked_events(tag, users, EVENTS)

    async with standin_process(log_dir) as telegram:
        service = notifier(
            database_url, rabbitmq_url, telegram.base_url, log_dir, "notifier", **LIFTED
        )
        service.start()
        try:
            await service.wait_ready()
            stream = asyncio.create_task(
                publish_reliably(rabbitmq_url, marked.events, rate=RATE, window=10)
            )
            # The outage starts once a third of the stream is through.
            await eventually(
                lambda: _accepted_at_least(telegram, EVENTS // 3),
                120,
                0.05,
                "a third of the events delivered before the outage",
            )
            started = time.monotonic()
            async with outage():
                stopped = time.monotonic()
                await asyncio.sleep(DOWN_SECONDS)  # the outage itself, not a wait for anything
            downtime = time.monotonic() - started
            stats = await stream
            await eventually(
                lambda: settled(database_url, rabbitmq_url, marked),
                180,
                0.25,
                "every event processed after the outage",
            )
            assert service.alive, "the notifier died in the outage:\n" + service.log_text()[-3000:]
        finally:
            code = service.stop()
        assert code == 0, service.log_text()[-3000:]
        counted = await tally(telegram, marked)
    dead = await drain_dlq(rabbitmq_url)
    report(
        name,
        events=EVENTS,
        faults=1,
        lost=len(counted.lost),
        duplicated=counted.extra,
        downtime_s=round(downtime, 1),
        stop_s=round(stopped - started, 1),
        publish_retries=stats.retries,
        dead_lettered=len(dead),
    )
    assert counted.lost == [], f"lost events: {counted.lost[:20]}"
    assert dead == [], [m.headers for m in dead[:5]]
    assert counted.extra <= 1, f"duplicated: {counted.duplicated}"


async def _accepted_at_least(telegram, count: int) -> bool:
    return (await telegram.stats())["send_message_accepted"] >= count


async def test_rabbitmq_stopped_and_started_during_the_stream(
    fresh_database_url, rabbitmq_url, tmp_path
):
    reason = rabbitmq_restartable(rabbitmq_url)
    if reason:
        pytest.skip(reason)
    await _stream_through_outage(
        "RabbitMQ restart",
        fresh_database_url,
        rabbitmq_url,
        tmp_path,
        lambda: rabbitmq_stopped(rabbitmq_url),
    )


async def test_postgresql_stopped_and_started_during_the_stream(
    fresh_database_url, rabbitmq_url, tmp_path
):
    reason = postgres_restartable(fresh_database_url)
    if reason:
        pytest.skip(reason)
    await _stream_through_outage(
        "PostgreSQL restart",
        fresh_database_url,
        rabbitmq_url,
        tmp_path,
        lambda: postgres_stopped(fresh_database_url),
    )
