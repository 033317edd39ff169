"""Scheduler benchmark: 100,000 linked users all due at 09:00 UTC, selected and emitted.

    uv run python -m bench.scheduler_bench            # BENCH_USERS=100000 by default
                                                      # (10,000 with BENCH_QUICK=1)

Runs against real PostgreSQL and RabbitMQ (DATABASE_URL / RABBITMQ_URL, else the local servers),
in a fresh database and a throwaway vhost, both removed afterwards, so no real notifier ever sees
the triggers. Prints and returns the numbers.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import aio_pika
from sqlalchemy import text

from bench.harness import bench_users, sized
from services.scheduler.clock import FixedClock
from services.scheduler.main import build_engine, build_job, build_publisher
from services.scheduler.settings import SchedulerSettings
from shared.contract import EventType
from tests.infra import find_servers, isolated_database, isolated_vhost
from tests.support.bus import bound_queue
from tests.support.links import seed_links

DUE = datetime(2026, 2, 26, 9, 0, tzinfo=UTC)

DUE_QUERY_PLAN = text("""
    EXPLAIN (ANALYZE, COSTS OFF) SELECT s.user_id FROM summary_schedules s
    WHERE s.due_at <= :now ORDER BY s.due_at LIMIT 5000 FOR UPDATE OF s SKIP LOCKED
""")


async def emit_triggers(
    database_url: str,
    rabbitmq_url: str,
    users: int,
    *,
    queue_name: str | None = None,
    hours: int = 1,
) -> dict[str, Any]:
    """Seed `users` links due at 09:00 UTC, then time the scheduler recording and publishing
    every trigger (with confirms) in one tick. With `hours` > 1 the users are spread over that
    many summary times an hour apart (09:00, 10:00, ... UTC) and only the 09:00 share is due.

    With `queue_name=None` the triggers go to a queue of the benchmark's own, checked and purged;
    otherwise to the named queue, already bound (the notifier's), and left there.
    """
    settings = SchedulerSettings(
        database_url=database_url, rabbitmq_url=rabbitmq_url, jwt_secret="bench-" + "x" * 32
    )
    engine = build_engine(settings)
    publisher = build_publisher(settings)
    connection = await aio_pika.connect_robust(rabbitmq_url)
    try:
        channel = await connection.channel()
        if queue_name is None:
            queue = await bound_queue(
                channel, EventType.DAILY_SUMMARY.value, name="bench.daily_summary"
            )
        else:
            queue = await channel.get_queue(queue_name)
        await publisher.connect()

        started = time.perf_counter()
        pairs = bench_users(users)
        for hour in range(hours):  # one statement per summary time
            at = {"summary_time": clock_time((9 + hour) % 24)} if hours > 1 else {}
            await seed_links(engine, pairs[hour::hours], **at)
        due = len(pairs[0::hours])
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE telegram_links"))
        seed_seconds = time.perf_counter() - started

        clock = FixedClock(DUE - timedelta(minutes=1))
        job = build_job(settings, engine, publisher, clock, instance="bench")

        started = time.perf_counter()
        await job.sync(clock.now())  # first sight of 100,000 new links
        first_sync_seconds = time.perf_counter() - started
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE summary_schedules"))
            plan = (await conn.execute(DUE_QUERY_PLAN, {"now": DUE})).scalars().all()

        clock.set(DUE)
        started = time.perf_counter()
        run = await job.tick()  # reconcile (no changes), record 100,000, publish 100,000
        emit_seconds = time.perf_counter() - started
        assert run is not None and run.emitted == due and run.failed == 0, run

        idle_ticks = []
        for n in range(1, 6):  # the steady state: nothing due
            clock.set(DUE + n * timedelta(seconds=10))
            started = time.perf_counter()
            assert await job.tick() is None
            idle_ticks.append(time.perf_counter() - started)

        queued = await queue.declare() if queue_name is None else None  # a fresh count
        if queued is not None:
            assert queued.message_count == due, queued.message_count
            await queue.purge()
        return {
            "users": users,
            "due": due,
            "seed_seconds": round(seed_seconds, 2),
            "first_sync_seconds": round(first_sync_seconds, 2),
            "emit_seconds": round(emit_seconds, 2),
            "record_seconds": run.details.get("record_seconds"),
            "publish_seconds": run.details.get("publish_seconds"),
            "triggers_per_second": round(due / emit_seconds),
            "emit_ms_per_trigger": round(emit_seconds * 1000 / due, 3),
            "idle_tick_seconds": round(statistics.median(idle_ticks), 3),
            "idle_ticks_seconds": [round(t, 3) for t in idle_ticks],
            "queue": queue_name or "bench.daily_summary",
            "due_query_ms": float(plan[-1].split()[-2]),  # "Execution Time: X ms"
            "due_query_plan": [line.strip() for line in plan],
        }
    finally:
        await publisher.close()
        await connection.close()
        await engine.dispose()


def main() -> dict[str, Any]:
    """Run the benchmark; print and return its numbers."""
    users = int(os.environ.get("BENCH_USERS", sized(100_000, 10_000)))
    with (
        find_servers() as servers,
        isolated_database(servers, prefix="sns_bench") as database_url,
        isolated_vhost(servers, prefix="bench") as rabbitmq_url,
    ):
        result = asyncio.run(emit_triggers(database_url, rabbitmq_url, users))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
