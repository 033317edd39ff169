"""The notifier as a real process: health endpoints, and SIGTERM with messages still in flight."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from services.standin.server import StandIn
from tests.support.ids import new_chat_id, new_user
from tests.support.links import seed_links
from tests.support.processes import Service, our_service, service_env

pytestmark = pytest.mark.e2e


def notifier_process(database_url, rabbitmq_url, api_base, log_dir, name, **settings) -> Service:
    """A notifier process (not started) sending as the stand-in's bot (no TELEGRAM_BOT_TOKEN)."""
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env |= service_env(database_url, rabbitmq_url, api_base, **settings)
    return our_service("notifier", env, log_dir, name, inherit=False)


async def test_sigterm_finishes_fast_and_leaves_unsent_messages_for_the_next_notifier(
    database_url, rabbitmq_url, tmp_path
):
    from shared.publisher import EventPublisher

    user, group = new_user(), -new_chat_id()
    await seed_links(database_url, [(user, group)])

    async with StandIn() as standin:
        # A group may get 3 messages a minute here: of 6, three wait in the rate limiter.
        first = notifier_process(
            database_url, rabbitmq_url, standin.base_url, tmp_path, "notifier",
            telegram_rate_per_group_per_min=3, notifier_shutdown_seconds=2,
        ).start()  # fmt: skip
        try:
            await first.wait_ready()
            async with httpx.AsyncClient() as client:
                alive = await client.get(first.url("/healthz"))
                assert alive.status_code == 200
                assert alive.json() == {"status": "ok", "checks": {"progress": "ok"}}
            async with EventPublisher(rabbitmq_url) as publisher:
                for i in range(6):
                    await publisher.send("post_failure", user, {"platform": "x", "error": f"#{i}"})
            await standin.wait_for_messages(group, 3, timeout=30)

            started = time.monotonic()
            first.proc.send_signal(signal.SIGTERM)
            assert first.proc.wait(timeout=15) == 0
            assert time.monotonic() - started < 10
        finally:
            if first.alive:
                first.kill()

        second = notifier_process(
            database_url, rabbitmq_url, standin.base_url, tmp_path, "notifier-2"
        ).start()
        try:
            await standin.wait_for_messages(group, 6, timeout=30)
            texts = [
                m["text"].split("⚠️ 오류: ")[1].split("\n")[0] for m in standin.bot_messages(group)
            ]
            assert texts == [f"#{i}" for i in range(6)]  # all delivered, once, in order
        finally:
            second.stop(15)
    for notifier in (first, second):
        assert "Traceback" not in notifier.log_text()
