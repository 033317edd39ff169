"""The whole system as a developer runs it (`sns-telegram dev`): real processes, real servers.

A user links their account through the stand-in, gets a post notification and their daily report,
sees the post's numbers edited in place, presses the notifier's buttons (handled by the linker:
Retry publishes `post_retry_requested`, "Mute this type" stops that type), every service answers
/healthz, /readyz and /metrics, and Ctrl-C (SIGTERM) stops everything.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from services.standin.client import StandInClient
from shared.publisher import EventPublisher
from tests.support import jwts
from tests.support.bus import bound_queue
from tests.support.ids import new_chat_id, new_user
from tests.support.processes import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "e2e-secret-0123456789abcdef-0123456789"


def bearer(sub: str, roles: tuple[str, ...] = ()) -> dict[str, str]:
    return jwts.bearer(sub, JWT_SECRET, roles=roles)


@pytest.fixture
def system(fresh_database_url, rabbitmq_url, tmp_path):
    ports = {name: free_port() for name in ("linker", "scheduler", "notifier", "standin")}
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "RABBITMQ_URL": rabbitmq_url,
        "JWT_SECRET": JWT_SECRET,
        "LINKER_PORT": str(ports["linker"]),
        "SCHEDULER_PORT": str(ports["scheduler"]),
        "NOTIFIER_PORT": str(ports["notifier"]),
        "LOG_FORMAT": "json",
    }
    env.pop("TELEGRAM_BOT_TOKEN", None)
    env.pop("TELEGRAM_API_BASE", None)
    log = (tmp_path / "dev.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "dev", "--standin-port", str(ports["standin"])],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        yield process, urls, tmp_path / "dev.log", rabbitmq_url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


class RetryRequests:
    """A queue bound to `post_retry_requested`, as the platform's publisher would consume it."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection, queue: Any) -> None:
        self._connection = connection
        self._queue = queue

    async def get(self, timeout: float) -> aio_pika.abc.AbstractIncomingMessage:
        async def one() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await self._queue.get(fail=False)

        return await eventually(one, timeout=timeout, interval=0.1)

    async def close(self) -> None:
        await self._connection.close()


async def retry_requests(rabbitmq_url: str) -> RetryRequests:
    connection = await aio_pika.connect_robust(rabbitmq_url)
    channel = await connection.channel()
    queue = await bound_queue(channel, "post_retry_requested")
    return RetryRequests(connection, queue)


async def ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_link_notify_summarise_and_stop(system):
    process, urls, log, rabbitmq_url = system
    for name in ("linker", "scheduler", "notifier"):
        await eventually(lambda name=name: ready(urls[name]), timeout=120, interval=0.25)

    user, chat = new_user("e2e"), new_chat_id()
    async with (
        httpx.AsyncClient(base_url=urls["linker"], timeout=10) as api,
        StandInClient(urls["standin"]) as telegram,
    ):
        # 1. The frontend asks for a linking URL; the user opens it and sends /start TOKEN.
        link = (await api.get("/api/telegram/link-account", headers=bearer(user))).json()
        assert link["linking_url"] == f"https://t.me/piwpiwtelegrambot?start={link['token']}"
        await telegram.user_sends(chat, f"/start {link['token']}")
        await telegram.wait_for_messages(chat, 1, timeout=30)
        status = (await api.get("/api/telegram/status", headers=bearer(user))).json()
        assert status["telegram_enabled"] is True and status["telegram_chat_id"] == str(chat)

        # 2. The platform publishes a post_success: the user reads the spec's message.
        async with EventPublisher(rabbitmq_url) as pub:
            event = await pub.send(
                "post_success", user,
                {"platform": "instagram", "content": "봄 신상 <b>50%</b> 할인", "likes": 1234,
                 "comments": 56, "post_url": "https://instagram.com/p/abc", "post_id": "p-1"},
            )  # fmt: skip
        messages = await telegram.wait_for_messages(chat, 2, timeout=30)
        assert messages[1]["text"] == (
            "✅ SNS 게시 완료\n\n📸 Instagram\n📝 봄 신상 <b>50%</b> 할인\n"
            "🔗 https://instagram.com/p/abc\n👥 좋아요: 1,234 | 댓글: 56\n"
            f"⏰ {event.occurred_at:%Y-%m-%d %H:%M:%S} UTC"
        )

        # 3. An admin resends today's summary: the report counts that post.
        today = event.occurred_at.date().isoformat()
        async with httpx.AsyncClient(base_url=urls["scheduler"], timeout=30) as admin:
            answer = await admin.post(
                "/api/admin/scheduler/jobs/telegram_daily_summary/trigger",
                json={"user_id": user, "date": today},
                headers=bearer("ops", ("admin",)),
            )
            assert answer.status_code in (200, 202), answer.text
        messages = await telegram.wait_for_messages(chat, 3, timeout=30)
        assert messages[2]["text"] == (
            "📊 일일 SNS 리포트\n\n📝 게시물: 1개\n✅ 성공: 1개\n❌ 실패: 0개\n👥 총 참여: 1,290\n\n"
            f"플랫폼별 통계:\n📸 Instagram: 1 게시 | 👥 1,290\n\n📅 {today}"
        )

        # 4. New numbers for the post edit its message in place (no new message).
        async with EventPublisher(rabbitmq_url) as pub:
            await pub.send("post_metrics_updated", user, {"post_id": "p-1", "likes": 2000,
                                                         "comments": 80})  # fmt: skip

        async def edited() -> bool:
            return "👥 좋아요: 2,000 | 댓글: 80" in (await telegram.bot_messages(chat))[1]["text"]

        await eventually(edited, timeout=30)
        assert len(await telegram.bot_messages(chat)) == 3

        # 5. A failure comes with buttons; the linker handles the presses. Retry publishes the
        # original event's data for the platform, once; "Mute this type" stops that type.
        retries = await retry_requests(rabbitmq_url)
        async with EventPublisher(rabbitmq_url) as pub:
            failure = await pub.send("post_failure", user, {"platform": "x", "error": "timeout"})
        failure_message = (await telegram.wait_for_messages(chat, 4, timeout=30))[3]
        buttons = {
            b["text"]: b.get("callback_data")
            for row in failure_message["reply_markup"]["inline_keyboard"]
            for b in row
        }
        press = await telegram.press(chat, failure_message["message_id"], buttons["🔄 다시 시도"])
        answer = await telegram.callback(press["callback_query"]["id"], timeout=15)
        assert answer["answered"]
        request = await retries.get(timeout=15)
        assert request.routing_key == "post_retry_requested"
        body = json.loads(request.body)
        assert body["user_id"] == user
        assert body["data"]["original_event_id"] == str(failure.event_id)
        assert (body["data"]["platform"], body["data"]["error"]) == ("x", "timeout")
        await request.ack()

        press = await telegram.press(
            chat, failure_message["message_id"], buttons["🔕 이 유형 알림 끄기"]
        )
        await telegram.callback(press["callback_query"]["id"], timeout=15)
        preferences = await api.get("/api/telegram/preferences", headers=bearer(user))
        assert preferences.json()["muted_types"] == ["post_failure"]
        async with EventPublisher(rabbitmq_url) as pub:
            await pub.send("post_failure", user, {"platform": "x", "error": "muted"})
            await pub.send("automation_executed", user, {"automation_name": "Daily",
                           "platforms": ["x"], "execution_time": "10:00"})  # fmt: skip
        # (message 5 is the linker's reply to the Retry press)
        messages = await telegram.wait_for_messages(chat, 6, timeout=30)
        assert messages[4]["text"].startswith("🔄") and "재시도" in messages[4]["text"]
        assert len(messages) == 6 and messages[5]["text"].startswith("🤖 자동화 규칙 실행")
        # ...and the messages of a chat keep their order, so the muted failure was skipped.
        await retries.close()

    # 6. Every service exposes its metrics.
    async with httpx.AsyncClient(timeout=5) as client:
        for name in ("linker", "scheduler", "notifier"):
            assert (await client.get(f"{urls[name]}/healthz")).status_code == 200
            metrics = (await client.get(f"{urls[name]}/metrics")).text
            assert "# TYPE" in metrics
        notifier_metrics = (await client.get(f"{urls['notifier']}/metrics")).text
        assert re.search(
            r'notifier_messages_sent_total\{type="post_success"\} 1\.0', notifier_metrics
        )

    # 7. Ctrl-C / SIGTERM stops every process, cleanly and promptly.
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - started < 20
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]
    assert "Bearer" not in output and "eyJ" not in output  # no JWT in any log
