"""`sns-telegram linker` as a real process against the stand-in as a real process."""

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.linker import texts
from services.standin.client import StandInClient
from tests.linker.helpers import JWT_SECRET, bearer
from tests.support.ids import new_chat_id, new_user
from tests.support.processes import Service, free_port, our_service

pytestmark = pytest.mark.e2e


def clean_env(**values: str) -> dict[str, str]:
    """The environment for a child process: ours minus the linker's variables, plus `values`."""
    ours = ("TELEGRAM_", "JWT_", "LINKER_", "CHAT_ID_", "APP_ENV", "LINK_TOKEN", "TEST_MESSAGES")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(ours)}
    return env | {"APP_ENV": "development"} | values


@pytest.fixture
def processes() -> Iterator[list[Service]]:
    """Processes the test starts, stopped (SIGTERM) after it; one that must be killed fails it."""
    started: list[Service] = []
    yield started
    for process in reversed(started):
        assert process.stop(20) != -signal.SIGKILL, f"{process.name} ignored SIGTERM"


async def standin_and_linker(
    processes: list[Service], log_dir: Path, database_url: str, rabbitmq_url: str
) -> tuple[str, Service]:
    """The stand-in and `sns-telegram linker` as processes, both ready: the stand-in's URL, and
    the linker (JSON logs at DEBUG, in `log_dir`)."""
    port = free_port()
    argv = ["-m", "services.standin", "--port", str(port)]
    standin = Service("standin", argv, clean_env(), log_dir / "standin.log", port=port)
    processes.append(standin.start())
    await standin.wait_ready("/_standin/info")
    env = clean_env(
        DATABASE_URL=database_url,
        RABBITMQ_URL=rabbitmq_url,
        TELEGRAM_API_BASE=standin.url(),
        JWT_SECRET=JWT_SECRET,
        LINKER_HOST="127.0.0.1",
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
    )
    linker = our_service("linker", env, log_dir, inherit=False)
    processes.append(linker.start())
    await linker.wait_ready()
    return standin.url(), linker


async def test_the_whole_flow_over_http(database_url, rabbitmq_url, processes, tmp_path):
    standin_url, linker = await standin_and_linker(processes, tmp_path, database_url, rabbitmq_url)
    linker_url, linker_log = linker.url(), linker.log_path

    user, chat = new_user(), new_chat_id()
    auth = bearer(user)
    async with (
        httpx.AsyncClient(base_url=linker_url, timeout=10) as api,
        StandInClient(standin_url) as telegram,
    ):
        status = await api.get("/api/telegram/status", headers=auth)
        assert status.json()["telegram_enabled"] is False

        link = (await api.get("/api/telegram/link-account", headers=auth)).json()
        assert link["bot_username"] == "piwpiwtelegrambot"  # from getMe: no username configured
        assert link["linking_url"] == f"https://t.me/piwpiwtelegrambot?start={link['token']}"

        await telegram.user_sends(chat, f"/start {link['token']}")
        messages = await telegram.wait_for_messages(chat, 1)
        assert messages[-1]["text"] == texts.LINKED

        status = (await api.get("/api/telegram/status", headers=auth)).json()
        assert status["telegram_enabled"] is True
        assert status["telegram_chat_id"] == str(chat)

        sent = await api.post("/api/telegram/send-test-message", headers=auth, json={})
        assert sent.json() == {"status": "success", "message": "Test message sent successfully"}
        messages = await telegram.wait_for_messages(chat, 2)
        assert (
            messages[-1]["text"] == "🧪 테스트 메시지\n\nTelegram 연동이 정상적으로 작동합니다! ✅"
        )

        unlinked = await api.post("/api/telegram/unlink-account", headers=auth, json={})
        assert unlinked.status_code == 200
        status = (await api.get("/api/telegram/status", headers=auth)).json()
        assert status == {
            "telegram_enabled": False,
            "message": "Telegram account not linked. Use /link-account endpoint to connect.",
        }
        docs = await api.get("/openapi.json")
        assert set(docs.json()["paths"]) >= {"/api/telegram/link-account", "/api/telegram/status"}
        assert (await api.get("/metrics")).status_code == 200

    assert linker.stop(20) == 0  # SIGTERM shuts down cleanly
    logged = linker_log.read_text()
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert any(line["msg"] == "telegram linked" for line in lines)
    for secret in (auth["Authorization"].split()[1], link["token"], str(chat), "1:local-stand-in"):
        assert secret not in logged


async def test_production_without_secrets_refuses_to_start(tmp_path):
    linker = our_service("linker", clean_env(APP_ENV="production"), tmp_path, inherit=False)
    assert linker.start().proc.wait(timeout=60) != 0
    output = linker.log_text()
    for variable in ("TELEGRAM_BOT_TOKEN", "CHAT_ID_ENCRYPTION_KEY", "JWT_SECRET"):
        assert variable in output
