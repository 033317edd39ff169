"""Daily summary at scale: 100,000 linked users, each with a day of activity.

    uv run python -m bench.daily_summary_bench       # BENCH_QUICK=1: 10,000 users

1. seed the links (bench/scheduler_bench.py's) and 3 activity rows per user on the summarised day
   (two successes on two platforms, one failure), with generate_series;
2. the scheduler records and publishes every trigger to `notifier.events` in one tick (timed,
   bench/scheduler_bench.py's procedure);
3. aggregation and rendering in-process: the notifier's own batch query
   (`NotifierStore.daily_reports`, 200 users a batch as the notifier does) and
   `render_daily_summary`, over the first users: cost per user;
4. the notifier as a process, limits lifted, on the first SAMPLE triggers: the end-to-end rate;
5. paid broadcast: the stand-in enforcing 1000/s for `allow_paid_broadcast` (and 1/s per chat),
   the notifier with TELEGRAM_ALLOW_PAID_BROADCAST=true on the next SLICE triggers: achieved rate
   and 429s;
6. projection for all users: users / achieved paid rate, plus the emit time (sequential) or
   overlapping it, against the ideal users / 1000 s. Extrapolated from the slice, and said so.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Any

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import text

from bench.harness import Process, percentile, servers, service_env, sized, standin, write_result
from bench.notifier_bench import _wait_queue
from bench.scheduler_bench import emit_triggers
from services.notifier.render import render_daily_summary
from services.notifier.store import NotifierStore, SummaryWindow, open_pool
from shared.contract import NOTIFIER_QUEUE
from shared.db import create_engine
from tests.support.waiting import eventually

console = Console()
USERS = sized(100_000, 10_000)
SAMPLE = sized(5_000, 2_000)
SLICE = sized(10_000, 3_000)
AGGREGATE_USERS = sized(5_000, 2_000)
BATCH = 200  # the notifier's default NOTIFIER_BATCH_SIZE
DAY = date(2026, 2, 25)  # the day the 09:00 UTC triggers of 2026-02-26 summarise
PAID_RATE = 1000
HEADER = "📊 일일 SNS 리포트"

ACTIVITY = text("""
    INSERT INTO activity (event_id, user_id, type, occurred_at, platform, likes, comments, details)
    SELECT gen_random_uuid(), 'bench-' || g,
           CASE WHEN k = 3 THEN 'post_failure' ELSE 'post_success' END,
           timestamptz '2026-02-25 00:00+00' + make_interval(hours => k * 6 + g % 6),
           CASE k WHEN 2 THEN 'twitter' ELSE 'instagram' END,
           CASE WHEN k < 3 THEN (g * 7 + k) % 1000 ELSE 0 END,
           CASE WHEN k < 3 THEN (g + k) % 100 ELSE 0 END,
           '{}'::jsonb
    FROM generate_series(1, :users) AS g, generate_series(1, 3) AS k
""")


async def seed_activity(database_url: str, users: int) -> float:
    """Three activity rows per user on DAY; seconds taken."""
    engine = create_engine(database_url, pool_size=1)
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(ACTIVITY, {"users": users})
        await conn.execute(text("ANALYZE activity"))
    await engine.dispose()
    return time.perf_counter() - started


async def aggregation_cost(database_url: str, users: int) -> dict[str, Any]:
    """The notifier's aggregation query and template, timed per user, in batches of BATCH."""
    pool = open_pool(database_url, size=1)
    await pool.open()
    store = NotifierStore(pool)
    query_seconds: list[float] = []
    render_seconds = 0.0
    sample = ""
    try:
        for start in range(1, users + 1, BATCH):
            windows = [
                SummaryWindow(f"daily_summary:bench-{i}", f"bench-{i}", DAY, "UTC")
                for i in range(start, min(start + BATCH, users + 1))
            ]
            started = time.perf_counter()
            async with pool.connection() as conn:
                reports = await store.daily_reports(conn, windows)
            query_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            texts = [render_daily_summary(r) for r in reports.values()]
            render_seconds += time.perf_counter() - started
            sample = sample or texts[0]
    finally:
        await pool.close()
    assert "📝 게시물: 3개" in sample, sample
    per_batch = [s * 1000 for s in query_seconds]
    return {
        "users": users,
        "batch": BATCH,
        "query_ms_per_user": round(sum(query_seconds) * 1000 / users, 3),
        "query_ms_per_batch_p50": round(percentile(per_batch, 50), 2),
        "query_ms_per_batch_p99": round(percentile(per_batch, 99), 2),
        "render_ms_per_user": round(render_seconds * 1000 / users, 4),
        "sample_text": sample,
    }


def _notifier(s: Any, base: str, **settings: Any) -> Process:
    env = service_env(s, base, notifier_port=0, **settings)
    return Process(["-m", "services.cli", "notifier"], env, "notifier")


async def _accepted(client: Any) -> int:
    return int((await client.stats())["send_message_accepted"])


async def _run_until(
    client: Any, notifier: Process, target: int, label: str, progress: Progress
) -> None:
    task = progress.add_task(label, total=target)

    async def reached() -> bool:
        assert notifier.alive, f"the notifier exited; see {notifier.log_path.name}"
        done = await _accepted(client)
        progress.update(task, completed=done)
        return done >= target

    await eventually(reached, 900, 0.2)
    progress.remove_task(task)


async def _rate(client: Any, first: int, last: int) -> float:
    """Messages per second between the stand-in's messages number `first` and `last`."""
    _, a = await client.sent(since=first, limit=1)
    _, b = await client.sent(since=last, limit=1)
    return (last - first) / (b[0]["sent_at"] - a[0]["sent_at"])


async def run(users: int = USERS) -> dict[str, Any]:
    """The whole benchmark; returns its numbers."""
    result: dict[str, Any] = {"users": users}
    with servers() as s, Progress(console=console, transient=True) as progress:
        async with standin() as (client, base):
            lifted = {"telegram_rate_global": 0, "telegram_rate_per_chat": 0}
            notifier = _notifier(s, base, **lifted)  # declares notifier.events, then stops
            await _wait_queue(s.rabbitmq_url)
            notifier.stop()

            step = progress.add_task("seeding activity", total=None)
            result["activity_rows"] = 3 * users
            result["activity_seed_seconds"] = round(await seed_activity(s.database_url, users), 2)
            progress.update(step, description=f"scheduler: {users:,} triggers")
            result["scheduler"] = await emit_triggers(
                s.database_url, s.rabbitmq_url, users, queue_name=NOTIFIER_QUEUE
            )
            progress.update(step, description="aggregation, in-process")
            result["aggregation"] = await aggregation_cost(s.database_url, AGGREGATE_USERS)
            progress.remove_task(step)

            # Limits lifted: what one trigger costs end to end (aggregate, render, send, record).
            notifier = _notifier(s, base, **lifted)
            await _run_until(client, notifier, 1, "notifier starting", progress)
            cpu0 = notifier.cpu_seconds()
            await _run_until(client, notifier, SAMPLE, "sample, limits lifted", progress)
            cpu = notifier.cpu_seconds() - cpu0
            sample_rate = await _rate(client, 0, SAMPLE - 1)
            notifier.stop()
            _, texts = await client.sent(since=0, limit=1)
            assert texts[0]["text"].startswith(HEADER), texts[0]["text"]
            result["sample"] = {
                "triggers": SAMPLE,
                "per_second": round(sample_rate, 1),
                "ms_per_user_end_to_end": round(1000 / sample_rate, 3),
                "notifier_cpu_ms_per_user": round(cpu * 1000 / (SAMPLE - 1), 3),
            }

            # Paid broadcast: Telegram's 1000/s, enforced by the stand-in.
            await client.set_limits(global_per_sec=30, per_chat_per_sec=1, per_group_per_min=20)
            before = await client.stats()
            done = before["send_message_accepted"]
            notifier = _notifier(s, base, telegram_allow_paid_broadcast="true")
            await _run_until(
                client, notifier, done + SLICE, "slice at paid-broadcast limits", progress
            )
            notifier.stop()
            after = await client.stats()
            # The first second (start-up, the limiter's burst) aside.
            warm = min(SLICE // 10, 1000)
            paid_rate = await _rate(client, done + warm, done + SLICE - 1)
            result["paid_broadcast"] = {
                "triggers": SLICE,
                "limit_per_second": PAID_RATE,
                "achieved_per_second": round(paid_rate, 1),
                "fraction_of_limit": round(paid_rate / PAID_RATE, 3),
                "too_many_requests": after["too_many_requests"] - before["too_many_requests"],
                "all_sent_as_paid_broadcast": (
                    after["paid_broadcasts"] - before["paid_broadcasts"]
                    == after["send_message_accepted"] - before["send_message_accepted"]
                ),
            }
    emit = result["scheduler"]["emit_seconds"]
    sending = users / paid_rate
    result["projection"] = {
        "ideal_seconds": users / PAID_RATE,
        "notifier_seconds": round(sending, 1),
        "total_seconds_sequential": round(emit + sending, 1),
        "total_seconds_overlapped": round(max(emit, sending), 1),
        "sequential_over_ideal": round((emit + sending) / (users / PAID_RATE), 2),
        "overlapped_over_ideal": round(max(emit, sending) / (users / PAID_RATE), 2),
        "how": (
            f"extrapolated from a {SLICE:,}-trigger slice at the stand-in's paid-broadcast "
            f"limits: {users:,} / achieved rate; 'sequential' adds the scheduler's emit time, "
            "'overlapped' lets the notifier send while the scheduler still publishes"
        ),
    }
    return result


def main() -> dict[str, Any]:
    """Run, print and write bench/results/daily_summary.json."""
    console.print(f"[bold]daily summary[/bold]: {USERS:,} users")
    result = asyncio.run(run())
    console.print(result)
    write_result("daily_summary", result)
    return result


if __name__ == "__main__":
    main()
