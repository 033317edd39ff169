"""`sns-telegram dev --demo` as `make demo` runs it: one readable console, `ready` only once every
service and the inbox answer, the demo chat with the spec's messages, and Ctrl-C (SIGINT, twice,
as a terminal plus `uv`/`make` forwarding it) stopping everything in order with exit status 0.

dev runs in a session of its own, as in a terminal's foreground, and the signals go to that
process group: its children run in groups of their own, so only dev gets them.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.standin.client import StandInClient
from tests.conftest import Brokers
from tests.infra import isolated_database, isolated_vhost
from tests.support.processes import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} ([a-z]+) +\| ")
UNSET = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE", "JWT_SECRET", "JWT_AUDIENCE", "JWT_ISSUER",
         "ADMIN_JWT_AUDIENCE", "LOG_FORMAT", "LOG_LEVEL")  # fmt: skip


@dataclass
class Dev:
    process: subprocess.Popen[bytes]
    log: Path
    urls: dict[str, str]
    env: dict[str, str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.output().splitlines() if needle in line]

    def said_by(self, name: str) -> list[str]:
        """What `name` (dev, standin, migrate, linker, ...) printed, without time and name."""
        found = (LINE.match(line) for line in self.output().splitlines())
        return [m.string[m.end() :] for m in found if m and m.group(1) == name]


def dev_env(database_url: str, rabbitmq_url: str) -> tuple[dict[str, str], dict[str, str]]:
    ports = {name: free_port() for name in ("linker", "scheduler", "notifier", "standin")}
    env = {k: v for k, v in os.environ.items() if k not in UNSET and k != "APP_ENV"}
    env |= {"DATABASE_URL": database_url, "RABBITMQ_URL": rabbitmq_url}
    env |= {f"{n.upper()}_PORT": str(p) for n, p in ports.items() if n != "standin"}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    return env, urls


def start_dev(env: dict[str, str], urls: dict[str, str], log: Path, *args: str) -> Dev:
    port = urls["standin"].rsplit(":", 1)[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "dev", "--standin-port", port, *args],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Dev(process, log, urls, env)


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (127.0.0.1)
            return int(answer.status)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def dev(servers: Brokers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    log = tmp_path_factory.mktemp("dev") / "dev.log"
    with (
        isolated_database(servers, prefix="sns_dev") as database_url,
        isolated_vhost(servers) as rabbitmq_url,
    ):
        env, urls = dev_env(database_url, rabbitmq_url)
        system = start_dev(env, urls, log, "--demo")
        try:
            yield system
        finally:
            if system.process.poll() is None:
                os.killpg(system.process.pid, signal.SIGKILL)
                system.process.wait()


async def test_ready_is_said_once_every_service_and_the_inbox_answer(dev: Dev) -> None:
    [ready] = await eventually(lambda: dev.lines("| ready: "), timeout=180, what="ready")
    # Said only now: each of them answers at this moment (before, nothing waited for them).
    for name in ("linker", "scheduler", "notifier"):
        assert status(f"{dev.urls[name]}/readyz") == 200, name
    assert status(f"{dev.urls['standin']}/") == 200
    assert f"{dev.urls['standin']}/" in ready
    assert f"{dev.urls['linker']}/docs" in ready
    assert f"{dev.urls['scheduler']}/docs" in ready


async def test_the_demo_chat_shows_each_message_of_the_spec(dev: Dev) -> None:
    await eventually(lambda: dev.lines("| published "), timeout=120, what="the demo")
    async with StandInClient(dev.urls["standin"]) as telegram:
        texts = [m["text"] for m in await telegram.bot_messages(7)]
        failure = next(m for m in await telegram.bot_messages(7) if "게시 실패" in m["text"])
    assert texts[0].startswith("✅ Telegram 계정이 연결되었습니다!")
    firsts = [text.splitlines()[0] for text in texts[1:]]
    assert firsts == [
        "✅ SNS 게시 완료",
        "❌ SNS 게시 실패",
        "🤖 자동화 규칙 실행",
        "📊 일일 SNS 리포트",
    ]
    assert "📝 게시물: 2개" in texts[4]  # the report counts the demo's two posts of the day
    buttons = [b["text"] for row in failure["reply_markup"]["inline_keyboard"] for b in row]
    assert "🔄 다시 시도" in buttons
    [said] = dev.lines("| published ")
    assert f"{dev.urls['standin']}/#chat=7" in said


def readme_walkthrough() -> list[str]:
    """The README's "Try it" block, line by line (comments left out)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- walkthrough:", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


class Shell:
    """One bash, fed a line at a time as a person pastes them."""

    def __init__(self, env: dict[str, str]) -> None:
        self.bash = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.bash.stdout is not None
        for line in self.bash.stdout:
            self.lines.put(line)

    def paste(self, line: str, timeout: float = 120) -> tuple[int, str]:
        assert self.bash.stdin is not None
        # On a line of its own, whether or not the command ended its output with a newline.
        self.bash.stdin.write(f"{line}\nprintf '\\n__status=%s__\\n' $?\n")
        self.bash.stdin.flush()
        output: list[str] = []
        while not (text := self.lines.get(timeout=timeout)).startswith("__status="):
            output.append(text)
        return int(text.strip()[9:-2]), "".join(output)

    def close(self) -> None:
        self.bash.kill()
        self.bash.wait()


async def test_the_readme_walkthrough_pastes_as_written(dev: Dev) -> None:
    await eventually(lambda: dev.lines("| ready: "), timeout=180, what="ready")
    linker, standin = (dev.urls[n].removeprefix("http://") for n in ("linker", "standin"))
    lines = [
        line.replace("localhost:8000", linker).replace("localhost:8081", standin)
        for line in readme_walkthrough()
    ]
    assert sum("sns-telegram publish" in line for line in lines) == 3
    shell = Shell({k: v for k, v in dev.env.items() if k != "APP_ENV"})
    try:
        async with StandInClient(dev.urls["standin"]) as telegram:
            for line in lines:
                status, output = shell.paste(line)
                assert status == 0, f"{line}\n{output}"
                if "/_standin/chats/42/send" in line:  # a person reads the bot's reply first
                    await telegram.wait_for_messages(42, 1, timeout=30)
                if line.startswith('echo "$LINK"'):
                    assert '"instructions":"Development: this linker talks to the local' in output
            messages = await telegram.wait_for_messages(42, 4, timeout=60)
    finally:
        shell.close()
    texts = [m["text"] for m in messages]
    assert texts[0].startswith("✅ Telegram 계정이 연결되었습니다!")
    firsts = [text.splitlines()[0] for text in texts[1:]]
    assert firsts == ["✅ SNS 게시 완료", "❌ SNS 게시 실패", "🤖 자동화 규칙 실행"]


async def test_ctrl_c_twice_stops_everything_in_order_with_status_0(dev: Dev) -> None:
    await eventually(lambda: dev.lines("| ready: "), timeout=180, what="ready")
    os.killpg(dev.process.pid, signal.SIGINT)
    await eventually(lambda: dev.lines("| stopping (SIGINT)"), timeout=10, what="stopping")
    os.killpg(dev.process.pid, signal.SIGINT)  # as `uv run` forwards it again
    assert dev.process.wait(timeout=60) == 0
    lines = dev.output().splitlines()
    assert "Traceback" not in dev.output() and "KeyboardInterrupt" not in dev.output()
    assert [line for line in lines if not LINE.match(line)] == []  # time and name on every line
    assert lines[-1].endswith("| everything stopped")
    assert lines[-2].endswith("| telegram stand-in stopped")
    stopped = [i for i, line in enumerate(lines) if line.endswith("linker stopped")]
    assert stopped and stopped[0] < len(lines) - 2  # the stand-in stops last
    assert len(dev.said_by("migrate")) == 1  # one migration
    assert "color_message" not in dev.output() and "\x1b" not in dev.output()
    assert dev.lines("Polling stopped") == [] and dev.lines("Start polling") == []
    assert dev.lines("exited") == []  # a requested stop is no service failure
    for name in ("linker", "scheduler", "notifier"):
        assert status(f"{dev.urls[name]}/healthz") == 0, f"{name} still answers"


def test_a_service_not_ready_within_the_bound_is_named(
    servers: Brokers, fresh_database_url: str, rabbitmq_url: str, tmp_path: Path
) -> None:
    env, urls = dev_env(fresh_database_url, rabbitmq_url)
    dev = start_dev(env, urls, tmp_path / "dev.log", "--ready-timeout", "0")
    try:
        assert dev.process.wait(timeout=90) == 1
    finally:
        if dev.process.poll() is None:
            os.killpg(dev.process.pid, signal.SIGKILL)
    [error] = dev.lines("| error: ")
    assert "not ready within 0 s" in error
    for name in ("notifier", "linker", "scheduler"):
        assert f"{name} ({urls[name]}/readyz" in error
    assert dev.output().splitlines()[-1].endswith("| everything stopped")
    assert dev.lines("| ready: ") == []


def test_a_service_that_exits_before_it_is_ready_is_named(
    servers: Brokers, fresh_database_url: str, rabbitmq_url: str, tmp_path: Path
) -> None:
    env, urls = dev_env(fresh_database_url, rabbitmq_url)
    env["LINKER_PREFETCH"] = "many"  # the linker refuses to start: configuration error
    dev = start_dev(env, urls, tmp_path / "dev.log")
    try:
        assert dev.process.wait(timeout=120) == 1
    finally:
        if dev.process.poll() is None:
            os.killpg(dev.process.pid, signal.SIGKILL)
    assert any(
        line.startswith("linker: configuration error: LINKER_PREFETCH")
        for line in dev.said_by("linker")
    )
    [error] = dev.lines("| error: ")
    assert "linker exited with status 1 before it was ready" in error
    assert dev.lines("| ready: ") == []
