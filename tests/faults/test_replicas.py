"""Two notifier and two scheduler replicas at once, the stand-in enforcing Telegram's limits:
every event and every daily summary is delivered once, and the bot's rate is not doubled."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.faults.harness import (
    all_bot_messages,
    drain_dlq,
    execute,
    make_users,
    marked_events,
    notifier,
    publish_reliably,
    report,
    scheduler,
    size,
    tally,
    until_settled,
)
from tests.support.links import seed_links
from tests.support.standin import standin_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

USERS = size(300, 150)
EVENTS = 2 * USERS
LIMIT = 30  # messages per second per bot, enforced by the stand-in
WINDOW = 0.98  # the stand-in's window: a second less its default slack of 0.02 s
SUMMARY_LEAD = timedelta(seconds=12)  # the summaries fall due this long after the links exist
SUMMARY = "📊 일일 SNS 리포트"


async def test_two_notifiers_and_two_schedulers(fresh_database_url, rabbitmq_url, tmp_path):
    tag = f"rep-{uuid.uuid4().hex[:6]}"
    users = make_users(USERS, tag)
    marked = marked_events(tag, users, EVENTS)
    chats = {chat for _, chat in users}

    async with standin_process(tmp_path, "--limits") as telegram:
        base = telegram.base_url
        services = [
            notifier(fresh_database_url, rabbitmq_url, base, tmp_path, "notifier-1"),
            notifier(fresh_database_url, rabbitmq_url, base, tmp_path, "notifier-2"),
            scheduler(
                fresh_database_url, rabbitmq_url, base, tmp_path, "scheduler-1",
                scheduler_tick_seconds=1, scheduler_batch_size=10,
            ),
            scheduler(
                fresh_database_url, rabbitmq_url, base, tmp_path, "scheduler-2",
                scheduler_tick_seconds=1, scheduler_batch_size=10,
            ),
        ]  # fmt: skip
        for service in services:
            service.start()
        try:
            for service in services:
                await service.wait_ready()
            # Linked once every replica runs, with the summary due a few seconds later: both
            # schedulers see the links and the same due triggers.
            due = datetime.now(UTC) + SUMMARY_LEAD
            await seed_links(fresh_database_url, users, summary_time=due.strftime("%H:%M:%S"))
            await publish_reliably(rabbitmq_url, marked.events, window=10)
            await until_settled(
                fresh_database_url,
                rabbitmq_url,
                marked,
                EVENTS / LIMIT * 3 + 60,
                "every event processed",
                0.5,
            )
            await eventually(
                lambda: _summaries_sent(fresh_database_url, tag),
                USERS / LIMIT * 3 + 60,
                0.5,
                "every daily summary sent",
            )
            sent_by = {s.name: await _sent_total(s.port) for s in services[:2]}
            # Data retention: each slot pruned by one scheduler, the other told it was taken.
            pruned = [
                await _metric(s.port, 'scheduler_prune_runs_total{outcome="ok"')
                for s in services[2:]
            ]
            skipped = [
                await _metric(s.port, 'scheduler_prune_runs_total{outcome="claimed_elsewhere"')
                for s in services[2:]
            ]
            slots = await execute(
                fresh_database_url,
                "SELECT count(*) FROM job_runs WHERE job_id = 'telegram_data_retention'",
            )
            pids = {f":{s.proc.pid}": s.name for s in services[2:] if s.proc is not None}
            for service in services:
                assert service.alive, f"{service.name} died:\n{service.log_text()[-3000:]}"
        finally:
            codes = {s.name: s.stop() for s in services}
        stats = await telegram.stats()
        messages = await all_bot_messages(telegram)
        counted = await tally(telegram, marked)
    dead = await drain_dlq(rabbitmq_url)
    emitted_by = {
        name: 0 for name in pids.values()
    }  # which scheduler replica published how many triggers
    for instance, emitted in await execute(
        fresh_database_url,
        "SELECT details->>'instance', sum(emitted) FROM job_runs GROUP BY 1",
    ):
        emitted_by[next(n for p, n in pids.items() if str(instance).endswith(p))] += int(emitted)

    summaries = Counter(m["chat_id"] for m in messages if m["text"].startswith(SUMMARY))
    stamps = sorted(m["sent_at"] for m in messages if m["chat_id"] in chats)
    peak = max(_in_window(stamps, i) for i in range(len(stamps)))
    # Telegram allows a burst of LIMIT, then LIMIT/s: the sustained rate leaves the burst out.
    sustained = (len(stamps) - LIMIT) / (stamps[-1] - stamps[0])
    summary_extra = sum(n - 1 for n in summaries.values() if n > 1)
    report(
        "2 notifiers + 2 schedulers",
        events=EVENTS + USERS,
        faults=0,
        lost=len(counted.lost) + len(chats - set(summaries)),
        duplicated=counted.extra + summary_extra,
        too_many_requests=stats["too_many_requests"],
        peak_per_second=peak,
        sustained_per_second=round(sustained, 2),
        sent_by_replica=sent_by,
        emitted_by_replica=emitted_by,
    )
    assert codes == {s.name: 0 for s in services}, codes
    assert counted.lost == [] and counted.extra == 0, (counted.lost[:20], counted.duplicated)
    assert set(summaries) == chats and summary_extra == 0, summaries.most_common(3)
    assert stats["too_many_requests"] == 0, stats
    assert peak <= LIMIT, peak  # in every 1-second window
    assert sum(pruned) == slots[0][0] >= 1 and sum(skipped) >= 1, (pruned, skipped, slots)
    assert sustained <= LIMIT * 1.01, sustained  # two replicas would make it ~2 x LIMIT
    # Single active consumer: one replica sends everything, the other stands by.
    assert sorted(sent_by.values()) == [0, EVENTS + USERS], sent_by
    assert sum(emitted_by.values()) == USERS, emitted_by  # each trigger published once
    assert dead == []


def _in_window(stamps: list[float], start: int) -> int:
    """Messages in the stand-in's one-second window (less its slack) opening at stamps[start]."""
    end = start
    while end < len(stamps) and stamps[end] < stamps[start] + WINDOW:
        end += 1
    return end - start


async def _summaries_sent(database_url: str, tag: str) -> bool:
    rows = await execute(
        database_url,
        "SELECT count(*) FROM deliveries WHERE event_type = 'daily_summary' AND status = 'sent'"
        " AND user_id LIKE %s",
        (f"{tag}-%",),
    )
    return int(rows[0][0]) >= USERS


async def _sent_total(port: str) -> int:
    """Messages this notifier replica sent (from its /metrics)."""
    return int(await _metric(port, "notifier_messages_sent_total"))


async def _metric(port: str, series: str) -> float:
    """The sum of a counter's series on one replica's /metrics (`series` may name labels)."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    name, _, labels = series.partition("{")
    pattern = rf"^{re.escape(name)}\{{[^}}]*{re.escape(labels.rstrip('}'))}[^}}]*\}} (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.M))
