"""`sns-telegram scheduler` as a real process: ready, admin API, a resend reaches the broker,
a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.infra import free_port
from tests.scheduler.harness import JWT_SECRET, put_link, token

pytestmark = pytest.mark.e2e


async def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            assert process.poll() is None, "the scheduler exited during startup"
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            assert time.monotonic() < deadline, f"{url} not ready after {timeout}s"
            await asyncio.sleep(0.2)


async def test_the_scheduler_process_serves_resends_and_stops_cleanly(env, tmp_path):
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": env.settings.database_url.get_secret_value(),
        "RABBITMQ_URL": env.settings.rabbitmq_url.get_secret_value(),
        "JWT_SECRET": JWT_SECRET,
        "SCHEDULER_PORT": str(port),
        "SCHEDULER_TICK_SECONDS": "1",
        "LOG_FORMAT": "json",
    }
    await put_link(env.engine, "42", timezone="Asia/Kolkata")
    log = tmp_path / "scheduler.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "scheduler"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_ready(f"{base}/readyz", process)
        headers = {"Authorization": f"Bearer {token(['admin'])}"}
        async with httpx.AsyncClient(base_url=base, headers=headers) as client:
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
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, log.read_text()
