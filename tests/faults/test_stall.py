"""A notifier that makes no progress while events wait steps aside: its /readyz fails, it stops
itself with exit status 1, and the standby replica takes over and delivers everything, once.

The stall: a lock on `deliveries` held by another session (a stuck migration, an operator's open
transaction). The batch statement waits on it without ever failing, so no exception reveals it;
only the lack of progress does. The lock is released once the stalled replica has exited, as when
the orchestrator kills a session it finds stuck.
"""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
import pytest

from shared.db import libpq_url
from tests.faults.harness import (
    make_users,
    marked_events,
    notifier,
    publish_reliably,
    report,
    tally,
    until_settled,
)
from tests.support.links import seed_links
from tests.support.standin import standin_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

STALL_SECONDS = 3
EVENTS = 40


async def readyz(service) -> int:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            answer = await client.get(service.url("/readyz"))
            return answer.status_code
    except httpx.HTTPError:
        return 0


async def test_a_stalled_notifier_hands_over_to_the_standby(
    fresh_database_url, rabbitmq_url, tmp_path
):
    tag = f"stall-{uuid.uuid4().hex[:6]}"
    users = make_users(20, tag)
    await seed_links(fresh_database_url, users)
    marked = marked_events(tag, users, EVENTS)

    async with standin_process(tmp_path) as telegram:
        settings = {"notifier_stall_seconds": STALL_SECONDS, "telegram_rate_global": 0}
        active = notifier(
            fresh_database_url, rabbitmq_url, telegram.base_url, tmp_path, "active", **settings
        )
        standby = notifier(
            fresh_database_url, rabbitmq_url, telegram.base_url, tmp_path, "standby", **settings
        )
        active.start()
        await active.wait_ready()
        standby.start()  # registers second: the single active consumer stays `active`
        await standby.wait_ready()
        try:
            lock = await psycopg.AsyncConnection.connect(libpq_url(fresh_database_url))
            async with lock:
                await lock.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")
                await publish_reliably(rabbitmq_url, marked.events)
                published = time.monotonic()

                async def not_ready() -> bool:
                    return not active.alive or await readyz(active) == 503

                await eventually(
                    not_ready, STALL_SECONDS * 10, 0.1, "the stalled one failing /readyz"
                )
                await eventually(lambda: not active.alive, 60, 0.1, "the stalled notifier exiting")
                exited = time.monotonic()
                await lock.rollback()  # the stuck session is gone
            await until_settled(
                fresh_database_url,
                rabbitmq_url,
                marked,
                60,
                "every event delivered by the standby",
                0.2,
            )
            taken_over = time.monotonic()
        finally:
            standby_code = standby.stop()
            active.stop()
        counted = await tally(telegram, marked)

    assert active.proc is not None and active.proc.returncode == 1, active.log_text()[-3000:]
    assert "no progress for" in active.log_text()
    assert standby_code == 0, standby.log_text()[-3000:]
    assert counted.lost == [] and counted.extra == 0, (counted.lost, counted.duplicated)
    report(
        "stalled notifier",
        events=EVENTS,
        faults=1,
        lost=len(counted.lost),
        duplicated=counted.extra,
        stall_to_exit_s=round(exited - published, 1),
        exit_to_all_delivered_s=round(taken_over - exited, 1),
    )
