"""The whole system as a developer runs it (`sns-telegram dev`): real processes, real servers.

A user links their account through the stand-in, gets a post notification and their daily report,
every service answers /healthz, /readyz and /metrics, and Ctrl-C (SIGTERM) stops everything.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from services.standin.client import StandInClient
from shared.publisher import EventPublisher
from tests.notifier.harness import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "e2e-secret-0123456789abcdef-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bearer(sub: str, roles: tuple[str, ...] = ()) -> dict[str, str]:
    claims = {"sub": sub, "roles": list(roles), "exp": datetime.now(UTC) + timedelta(minutes=5)}
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


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


async def ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_link_notify_summarise_and_stop(system):
    process, urls, log, rabbitmq_url = system
    for name in ("linker", "scheduler", "notifier"):
        await eventually(lambda name=name: ready(urls[name]), timeout=60, interval=0.25)

    user, chat = f"e2e-{uuid.uuid4().hex[:8]}", 7_000_000_000 + uuid.uuid4().int % 1_000_000
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
                 "comments": 56, "post_url": "https://instagram.com/p/abc"},
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

    # 4. Every service exposes its metrics.
    async with httpx.AsyncClient(timeout=5) as client:
        for name in ("linker", "scheduler", "notifier"):
            assert (await client.get(f"{urls[name]}/healthz")).status_code == 200
            metrics = (await client.get(f"{urls[name]}/metrics")).text
            assert "# TYPE" in metrics
        notifier_metrics = (await client.get(f"{urls['notifier']}/metrics")).text
        assert re.search(
            r'notifier_messages_sent_total\{type="post_success"\} 1\.0', notifier_metrics
        )

    # 5. Ctrl-C / SIGTERM stops every process, cleanly and promptly.
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - started < 20
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]
    assert "Bearer" not in output and "eyJ" not in output  # no JWT in any log
