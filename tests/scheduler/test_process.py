"""`sns-telegram scheduler` as a real process: ready, admin API, a resend reaches the broker,
a clean stop on SIGTERM."""

from __future__ import annotations

import httpx
import pytest

from tests.scheduler.harness import JWT_SECRET, put_link, token
from tests.support.processes import our_service

pytestmark = pytest.mark.e2e


async def test_the_scheduler_process_serves_resends_and_stops_cleanly(env, tmp_path):
    environment = {
        "DATABASE_URL": env.settings.database_url.get_secret_value(),
        "RABBITMQ_URL": env.settings.rabbitmq_url.get_secret_value(),
        "JWT_SECRET": JWT_SECRET,
        "SCHEDULER_TICK_SECONDS": "1",
        "LOG_FORMAT": "json",
    }
    await put_link(env.engine, "42", timezone="Asia/Kolkata")
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
    finally:
        code = scheduler.stop(30)
    assert code == 0, scheduler.log_text()
