"""`sns-telegram linker` as a real process against the stand-in as a real process."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.linker import texts
from services.standin.client import StandInClient
from tests.infra import free_port
from tests.linker.helpers import JWT_SECRET, bearer, new_chat_id, new_user

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**values: str) -> dict[str, str]:
    """The environment for a child process: ours minus the linker's variables, plus `values`."""
    ours = ("TELEGRAM_", "JWT_", "LINKER_", "CHAT_ID_", "APP_ENV", "LINK_TOKEN", "TEST_MESSAGES")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(ours)}
    return env | {"APP_ENV": "development"} | values


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    return process.returncode


async def wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    """Poll `url` until it answers 200 (deadline `timeout`); fail early if the process exits."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"process exited with {process.returncode}:\n{log.read_text()}"
                )
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{url} not ready within {timeout} s:\n{log.read_text()}")
            await asyncio.sleep(0.1)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in reversed(started):
        stop(process)


async def test_the_whole_flow_over_http(database_url, rabbitmq_url, processes, tmp_path):
    standin_port, linker_port = free_port(), free_port()
    standin_url = f"http://127.0.0.1:{standin_port}"
    linker_url = f"http://127.0.0.1:{linker_port}"
    standin_log, linker_log = tmp_path / "standin.log", tmp_path / "linker.log"

    processes.append(
        spawn(["-m", "services.standin", "--port", str(standin_port)], clean_env(), standin_log)
    )
    await wait_ready(f"{standin_url}/_standin/info", processes[0], standin_log)
    env = clean_env(
        DATABASE_URL=database_url,
        RABBITMQ_URL=rabbitmq_url,
        TELEGRAM_API_BASE=standin_url,
        JWT_SECRET=JWT_SECRET,
        LINKER_HOST="127.0.0.1",
        LINKER_PORT=str(linker_port),
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
    )
    linker = spawn(["-m", "services.cli", "linker"], env, linker_log)
    processes.append(linker)
    await wait_ready(f"{linker_url}/readyz", linker, linker_log)

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

    assert stop(linker) == 0  # SIGTERM shuts down cleanly
    logged = linker_log.read_text()
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert any(line["msg"] == "telegram linked" for line in lines)
    for secret in (auth["Authorization"].split()[1], link["token"], str(chat), "1:local-stand-in"):
        assert secret not in logged


async def test_production_without_secrets_refuses_to_start(tmp_path):
    log = tmp_path / "linker.log"
    process = spawn(["-m", "services.cli", "linker"], clean_env(APP_ENV="production"), log)
    assert process.wait(timeout=60) != 0
    output = log.read_text()
    for variable in ("TELEGRAM_BOT_TOKEN", "CHAT_ID_ENCRYPTION_KEY", "JWT_SECRET"):
        assert variable in output
