"""The notifier as a real process: health endpoints, and SIGTERM with messages still in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.standin.server import StandIn
from tests.e2e.test_system import ready
from tests.infra import free_port
from tests.notifier.harness import eventually, unique_chat, unique_user

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def start_notifier(database_url, rabbitmq_url, api_base, port, log, **extra):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RABBITMQ_URL": rabbitmq_url,
        "TELEGRAM_API_BASE": api_base,
        "NOTIFIER_PORT": str(port),
        **{k.upper(): str(v) for k, v in extra.items()},
    }
    env.pop("TELEGRAM_BOT_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "notifier"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


async def test_sigterm_finishes_fast_and_leaves_unsent_messages_for_the_next_notifier(
    database_url, rabbitmq_url, tmp_path
):
    from sqlalchemy import text

    from shared.db import create_engine
    from shared.publisher import EventPublisher

    user, group = unique_user(), -unique_chat()
    engine = create_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO telegram_links (user_id, chat_id, enabled) VALUES (:u, :c, true)"),
            {"u": user, "c": str(group)},
        )
    await engine.dispose()

    async with StandIn() as standin:
        port = free_port()
        log = (tmp_path / "notifier.log").open("w")
        # A group may get 3 messages a minute here: of 6, three wait in the rate limiter.
        first = start_notifier(
            database_url, rabbitmq_url, standin.base_url, port, log,
            telegram_rate_per_group_per_min=3, notifier_shutdown_seconds=2,
        )  # fmt: skip
        try:
            await eventually(lambda: ready(f"http://127.0.0.1:{port}"), timeout=30, interval=0.2)
            async with httpx.AsyncClient() as client:
                alive = await client.get(f"http://127.0.0.1:{port}/healthz")
                assert alive.status_code == 200
                assert alive.json() == {"status": "ok", "checks": {"progress": "ok"}}
            async with EventPublisher(rabbitmq_url) as publisher:
                for i in range(6):
                    await publisher.send("post_failure", user, {"platform": "x", "error": f"#{i}"})
            await standin.wait_for_messages(group, 3, timeout=30)

            started = time.monotonic()
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=15) == 0
            assert time.monotonic() - started < 10
        finally:
            if first.poll() is None:
                first.kill()

        second = start_notifier(database_url, rabbitmq_url, standin.base_url, free_port(), log)
        try:
            await standin.wait_for_messages(group, 6, timeout=30)
            texts = [
                m["text"].split("⚠️ 오류: ")[1].split("\n")[0] for m in standin.bot_messages(group)
            ]
            assert texts == [f"#{i}" for i in range(6)]  # all delivered, once, in order
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=15)
            log.close()
    assert "Traceback" not in (tmp_path / "notifier.log").read_text()
