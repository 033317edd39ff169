"""Telegram misbehaving during a stream: 429 with retry_after, 5xx, a request hanging for 30 s,
and connections dropped without an answer. The notifier runs with Telegram's limits.

How each fault counts:
- 429: Telegram refused the message; it is sent again after retry_after (and no request of the
  bot may arrive before then: the stand-in counts `early_retries`).
- 5xx and a connection dropped before Telegram took the message: retried, delivered once.
- A request hanging longer than TELEGRAM_TIMEOUT_SECONDS: the request was sent, so the notifier
  records it `uncertain` and does not send it again (a resend could duplicate it). Here the
  stand-in had accepted it before hanging (deliver=true, what a slow Telegram does), so it is
  delivered exactly once; had Telegram never taken it, the user would miss that one message, which
  is the chosen side of the ambiguity (at most once for timeouts).
- A connection dropped after Telegram took the message: the notifier sees a network error and
  retries, so the user gets it twice. That duplicate is unavoidable (sendMessage has no
  idempotency key) and allowed: at most one extra per such fault.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.faults.harness import (
    drain_dlq,
    execute,
    make_users,
    marked_events,
    notifier_up,
    publish_reliably,
    report,
    size,
    tally,
    until_settled,
)
from tests.support.links import seed_links
from tests.support.standin import standin_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

EVENTS = size(240, 240)
HANG_SECONDS = 30

# (after this many accepted messages, faults queued at the stand-in; consumed by the next sends)
PHASES: list[tuple[int, list[dict[str, object]]]] = [
    (0, [{"error_code": 429, "retry_after": 3}]),
    (
        40,
        [
            {"error_code": 502, "count": 2},
            {"error_code": 500},
            {"error_code": 503},
        ],
    ),
    (80, [{"delay": HANG_SECONDS, "deliver": True}]),
    (120, [{"close_connection": True, "deliver": False}]),
    (150, [{"error_code": 429, "retry_after": 2}]),
    (180, [{"close_connection": True, "deliver": True}]),
]
UNAVOIDABLE_DUPLICATES = 1  # the close_connection fault that delivered before dropping


async def test_429_5xx_hangs_and_dropped_connections(fresh_database_url, rabbitmq_url, tmp_path):
    tag = f"tg-{uuid.uuid4().hex[:6]}"
    users = make_users(120, tag)
    await seed_links(fresh_database_url, users)
    marked = marked_events(tag, users, EVENTS)
    faults = sum(int(str(f.get("count", 1))) for _, batch in PHASES for f in batch)

    async with standin_process(tmp_path) as telegram:
        async with notifier_up(fresh_database_url, rabbitmq_url, telegram.base_url, tmp_path):
            stream = asyncio.create_task(publish_reliably(rabbitmq_url, marked.events, window=10))
            for threshold, batch in PHASES:
                await eventually(
                    lambda t=threshold: _accepted_at_least(telegram, t),
                    120,
                    0.02,
                    f"{threshold} messages accepted",
                )
                for fault in batch:
                    await telegram.add_fault(fault)
            await stream
            await until_settled(
                fresh_database_url,
                rabbitmq_url,
                marked,
                120,
                "every event processed after the faults",
            )
        stats = await telegram.stats()
        counted = await tally(telegram, marked)
    statuses = dict(
        await execute(
            fresh_database_url,
            "SELECT status, count(*) FROM deliveries WHERE event_id = ANY(%s) GROUP BY status",
            (list(marked.by_id),),
        )
    )
    dead = await drain_dlq(rabbitmq_url)
    report(
        "Telegram 429/5xx/hang/drop",
        events=EVENTS,
        faults=faults,
        lost=len(counted.lost),
        duplicated=counted.extra,
        early_retries=stats["early_retries"],
        too_many_requests=stats["too_many_requests"],
        uncertain=statuses.get("uncertain", 0),
        dead_lettered=len(dead),
    )
    assert stats["fault_hits"] == faults and stats["faults_pending"] == 0, stats
    assert stats["early_retries"] == 0, "a request came before retry_after had elapsed"
    assert stats["too_many_requests"] == 2, stats
    assert counted.lost == [], f"lost events: {counted.lost}"
    assert counted.extra <= UNAVOIDABLE_DUPLICATES, counted.duplicated
    assert dead == [], [m.headers for m in dead]
    assert statuses == {"sent": EVENTS - 1, "uncertain": 1}, statuses


async def _accepted_at_least(telegram, count: int) -> bool:
    return (await telegram.stats())["send_message_accepted"] >= count
