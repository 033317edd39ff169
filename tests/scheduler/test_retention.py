"""Data retention (`services/scheduler/retention.py`, `upkeep.py`): old rows go, recent and
in-use rows stay, batches, the dry run, and one prune per slot across replicas."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from services.scheduler.clock import FixedClock
from services.scheduler.config import RETENTION_JOB_ID
from services.scheduler.main import build_engine
from services.scheduler.retention import prune
from services.scheduler.retention_settings import RetentionSettings
from services.scheduler.upkeep import RetentionJob, slot_of
from tests.support.ids import new_user
from tests.support.rows import TABLES, count_every_table_async, owner, seed_every_table_async

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PRUNED = set(TABLES) - {"telegram_links", "summary_schedules"}
"""Every table but the two that hold one row per user (bounded by the users, never pruned)."""


def retention(**overrides: object) -> RetentionSettings:
    return RetentionSettings(_env_file=None, **overrides)  # type: ignore[arg-type]


async def test_old_rows_go_recent_and_in_use_rows_stay(env):
    old_user, recent_user, held_user = new_user("old"), new_user("recent"), new_user("held")
    async with env.engine.begin() as conn:
        old = await seed_every_table_async(conn, old_user, NOW - 60 * DAY)
        recent = await seed_every_table_async(conn, recent_user, NOW - timedelta(minutes=30))
        # Old but in use: a held delivery waiting for quiet hours to end, an unused token that
        # has not expired yet, a rate limit still limiting.
        held = await seed_every_table_async(conn, held_user, NOW - 60 * DAY, status="held")
        await conn.execute(
            text("UPDATE link_tokens SET expires_at = :at WHERE token_hash = :token"),
            {"at": NOW + timedelta(minutes=5), "token": held.token},
        )
        await conn.execute(
            text("UPDATE rate_limits SET tat = :at WHERE key = :key"),
            {"at": NOW + timedelta(minutes=5), "key": "test_message:" + held_user},
        )

    report = await prune(env.engine, retention(), NOW)

    async with env.engine.connect() as conn:
        assert await count_every_table_async(conn, old) == {
            table: 0 if table in PRUNED else 1 for table in TABLES
        }
        assert set((await count_every_table_async(conn, recent)).values()) == {1}
        kept = await count_every_table_async(conn, held)
    assert kept["deliveries"] == kept["link_tokens"] == kept["rate_limits"] == 1
    # The held user's other rows are as old as the old user's: they go.
    assert kept["processed_events"] == kept["activity"] == kept["job_runs"] == 0
    assert report.by_table() == {
        "processed_events": 2,
        "deliveries": 1,
        "activity": 2,
        "link_tokens": 1,
        "rate_limits": 1,
        "summary_runs": 2,
        "job_runs": 2,
        "delivery_attempts": 2,
        "button_presses": 2,
    }
    assert report.bytes > 0 and all(t.bytes > 0 for t in report.tables)


async def test_each_table_keeps_exactly_its_retention(env):
    settings = retention(
        retention_processed_events_days=5,
        retention_deliveries_days=9,
        retention_activity_days=3,
        retention_link_tokens_hours=2,
        retention_summary_runs_days=6,
        retention_job_runs_days=4,
    )
    ages = {"processed_events": 5, "deliveries": 9, "activity": 3, "summary_runs": 6, "job_runs": 4}
    inside, outside = new_user("inside"), new_user("outside")
    async with env.engine.begin() as conn:
        # Each row just inside its table's window, or just outside it.
        young = await seed_every_table_async(conn, inside, NOW - DAY)
        aged = await seed_every_table_async(conn, outside, NOW - DAY)
        for table, days in ages.items():
            column = {
                "processed_events": "received_at",
                "deliveries": "created_at",
                "activity": "recorded_at",
                "summary_runs": "due_at",
                "job_runs": "started_at",
            }[table]
            for user, shift in ((inside, -timedelta(minutes=1)), (outside, timedelta(minutes=1))):
                await conn.execute(
                    text(f"UPDATE {table} SET {column} = :at WHERE {owner(table)} = :user"),  # noqa: S608
                    {"at": NOW - days * DAY - shift, "user": user},
                )
        for rows, minutes in ((young, 119), (aged, 121)):  # expired that long ago
            await conn.execute(
                text("UPDATE link_tokens SET expires_at = :at WHERE token_hash = :token"),
                {"at": NOW - timedelta(minutes=minutes), "token": rows.token},
            )
            # A rate limit's state is kept an hour after its TAT passed.
            await conn.execute(
                text("UPDATE rate_limits SET tat = :at WHERE key = :key"),
                {"at": NOW - timedelta(minutes=minutes - 60), "key": "test_message:" + rows.user},
            )
    await prune(env.engine, settings, NOW)
    async with env.engine.connect() as conn:
        assert set((await count_every_table_async(conn, young)).values()) == {1}
        gone = await count_every_table_async(conn, aged)
    assert {t for t, n in gone.items() if n == 0} == {*ages, "link_tokens", "rate_limits"}


async def test_batches_delete_everything_in_short_transactions(env):
    async with env.engine.begin() as conn:
        for _ in range(7):
            await seed_every_table_async(conn, new_user("batch"), NOW - 90 * DAY)
    report = await prune(env.engine, retention(prune_batch_size=3), NOW)
    processed = next(t for t in report.tables if t.table == "processed_events")
    assert (processed.rows, processed.batches) == (7, 3)  # 3 + 3 + 1
    again = await prune(env.engine, retention(prune_batch_size=3), NOW)
    assert again.rows == 0


async def test_a_dry_run_deletes_nothing_and_counts_what_would_go(env):
    async with env.engine.begin() as conn:
        rows = await seed_every_table_async(conn, new_user("dry"), NOW - 90 * DAY)
    dry = await prune(env.engine, retention(), NOW, dry_run=True)
    async with env.engine.connect() as conn:
        assert set((await count_every_table_async(conn, rows)).values()) == {1}
    wet = await prune(env.engine, retention(), NOW)
    assert dry.dry_run and dry.by_table() == wet.by_table()
    assert dry.rows == len(PRUNED)
    assert abs(dry.bytes - wet.bytes) <= wet.bytes / 10  # row sizes, measured two ways
    assert "would delete" in "\n".join(dry.lines())


async def test_two_replicas_prune_each_slot_once(env):
    async with env.engine.begin() as conn:
        for _ in range(5):
            await seed_every_table_async(conn, new_user("slot"), NOW - 90 * DAY)
    settings = retention(prune_interval_minutes=60, prune_batch_size=2)
    clock = FixedClock(NOW)
    # Two replicas: each its own engine (connection pool), one database.
    engines = [build_engine(env.settings) for _ in range(2)]
    replicas = [RetentionJob(e, settings, clock, f"replica-{i}") for i, e in enumerate(engines)]

    try:
        reports = await asyncio.gather(*(r.run_slot() for r in replicas))
        await _later_slots(replicas, clock)
    finally:
        for engine in engines:
            await engine.dispose()

    ran = [r for r in reports if r is not None]
    assert len(ran) == 1 and ran[0].by_table()["processed_events"] == 5
    async with env.engine.connect() as conn:
        runs = (
            await conn.execute(
                text(
                    "SELECT slot, details, finished_at FROM job_runs WHERE job_id = :job"
                    " ORDER BY slot"
                ),
                {"job": RETENTION_JOB_ID},
            )
        ).all()
    # One run per slot, whatever the replicas: this slot's and the next one's.
    assert [slot for slot, _, _ in runs] == [NOW, NOW + timedelta(hours=1)]
    _, details, finished = runs[0]
    assert finished is not None and details["rows"]["processed_events"] == 5


async def _later_slots(replicas: list[RetentionJob], clock: FixedClock) -> None:
    """Later in the same slot nobody runs it again; the next slot runs once more."""
    clock.advance(timedelta(minutes=30))
    assert [await r.run_slot() for r in replicas] == [None, None]
    clock.advance(timedelta(minutes=30))
    reports = await asyncio.gather(*(r.run_slot() for r in replicas))
    assert sum(r is not None for r in reports) == 1


def test_slots_are_the_interval_from_a_fixed_origin():
    hour = timedelta(hours=1)
    assert slot_of(datetime(2026, 12, 1, 12, 59, 59, tzinfo=UTC), hour) == NOW
    assert slot_of(NOW, hour) == NOW
    assert slot_of(NOW, 7 * timedelta(minutes=1)) <= NOW


def test_sns_telegram_prune_dry_run_says_what_would_go_per_table_and_deletes_nothing(
    fresh_database_url, monkeypatch, capsys
):
    from sqlalchemy import create_engine

    from services.cli import main
    from shared.db import sqlalchemy_url
    from tests.support.rows import count_every_table, seed_every_table

    engine = create_engine(sqlalchemy_url(fresh_database_url))
    with engine.begin() as conn:
        rows = seed_every_table(conn, new_user("cli"), datetime.now(UTC) - 90 * DAY)
        conn.execute(text("UPDATE activity SET recorded_at = occurred_at"))
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)

    assert main(["prune", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    with engine.connect() as conn:
        assert set(count_every_table(conn, rows).values()) == {1}
    by_table = {line.split()[0]: line for line in out}
    assert set(by_table) == PRUNED | {"total"}
    for table in PRUNED:
        assert f"would delete {1:>10,} rows" in by_table[table], by_table[table]
    assert f"would delete {len(PRUNED):>10,} rows" in by_table["total"]

    assert main(["prune"]) == 0
    assert "deleted" in capsys.readouterr().out
    with engine.connect() as conn:
        gone = count_every_table(conn, rows)
    engine.dispose()
    assert {table for table, n in gone.items() if n == 0} == PRUNED
