"""`sns-telegram scheduler` as a real process: ready, admin API, a resend reaches the broker,
data retention runs, a clean stop on SIGTERM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from tests.scheduler.harness import JWT_SECRET, put_link, token
from tests.support.ids import new_user
from tests.support.processes import our_service
from tests.support.rows import count_every_table_async, seed_every_table_async
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

DAY = timedelta(days=1)


async def test_the_scheduler_process_serves_resends_and_stops_cleanly(env, tmp_path):
    environment = {
        "DATABASE_URL": env.settings.database_url.get_secret_value(),
        "RABBITMQ_URL": env.settings.rabbitmq_url.get_secret_value(),
        "JWT_SECRET": JWT_SECRET,
        "SCHEDULER_TICK_SECONDS": "1",
        "LOG_FORMAT": "json",
    }
    await put_link(env.engine, "42", timezone="Asia/Kolkata")
    async with env.engine.begin() as conn:
        old = await seed_every_table_async(conn, new_user("old"), datetime.now(UTC) - 90 * DAY)
        # Rows to prune, not a user to schedule: no link, no schedule.
        for table in ("telegram_links", "summary_schedules"):
            await conn.execute(
                text(f"DELETE FROM {table} WHERE user_id = :user"),  # noqa: S608
                {"user": old.user},
            )
    scheduler = our_service("scheduler", environment, tmp_path).start()
    try:
        await scheduler.wait_ready()
        headers = {"Authorization": f"Bearer {token(['admin'])}"}
        async with httpx.AsyncClient(base_url=scheduler.url(), headers=headers) as client:
            response = await client.post(
                "/api/admin/scheduler/jobs/telegram_daily_summary/trigger",
                json={"user_id": "42", "date": "2026-02-25"},
            )
            assert response.status_code == 200, response.text
            (trigger,) = await env.observer.take(1)
            assert trigger.event.user_id == "42" and trigger.data.resend
            status = (await client.get("/api/admin/scheduler/status")).json()
            assert status["scheduler"]["running"] is True
            assert status["jobs"][0]["scheduled_users"] == 1  # the loop reconciled the link

            # Data retention ran at start (its first slot) and says so in the history.
            async def retention_run():
                history = await client.get(
                    "/api/admin/scheduler/history", params={"job_id": "telegram_data_retention"}
                )
                runs = history.json()["runs"]
                return runs if runs and runs[0]["finished_at"] else None

            (run,) = await eventually(retention_run, 30)
            assert run["details"]["rows"]["processed_events"] == 1
        async with env.engine.connect() as conn:
            assert set((await count_every_table_async(conn, old)).values()) == {0}
    finally:
        code = scheduler.stop(30)
    assert code == 0, scheduler.log_text()
