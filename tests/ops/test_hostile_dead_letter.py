"""The whole path once: an event full of terminal escapes and bidi overrides is dead-lettered by a
real notifier, logged, then listed, shown, dry-run replayed and (not) purged by `sns-telegram
dlq` as a real process: no raw control character reaches a log line, stdout or stderr."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aio_pika
import pytest

from services.common.logging import ConsoleFormatter, JsonFormatter
from shared.contract import EXCHANGE, NOTIFIER_DLQ
from tests.notifier.harness import running_notifier
from tests.ops.helpers import wait_size
from tests.unit.unsafe import raw_unsafe

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLEAR = "\x1b[2J\x1b[H"
LINK = "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"
CSI8 = "\x9b31m"
RLO = "\u202e"
HOSTILE = f"{CLEAR}{LINK}{CSI8}{RLO}txt.exe\u2066[link=https://evil.example]x[/link]\r\b"


class Lines(logging.Handler):
    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def sns_telegram(rabbitmq_url: str, *argv: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "RABBITMQ_URL": rabbitmq_url}
    env.pop("COLUMNS", None)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *argv],
        cwd=ROOT,
        env=env,
        input=stdin.encode(),
        capture_output=True,
        timeout=120,
    )


def visible(result: subprocess.CompletedProcess) -> str:
    """stdout + stderr, checked: UTF-8 and no raw control character but line breaks."""
    output = result.stdout.decode("utf-8") + result.stderr.decode("utf-8")
    assert raw_unsafe(output, allow="\n") == [], output
    return output


async def test_a_hostile_dead_letter_cannot_rewrite_the_operators_terminal(
    database_url, rabbitmq_url
):
    json_lines, console_lines = Lines(JsonFormatter()), Lines(ConsoleFormatter())
    notifier_log = logging.getLogger()  # the root: every logger of the notifier
    for handler in (json_lines, console_lines):
        notifier_log.addHandler(handler)
    event_id = str(uuid.uuid4())
    body = {
        "event_id": event_id,
        "type": "post_success",
        "user_id": f"user-{HOSTILE}",
        "occurred_at": "2026-02-26T10:30:00Z",
        "data": {"platform": HOSTILE, "content": HOSTILE, "post_url": f"https://{HOSTILE}"},
    }
    try:
        async with running_notifier(database_url, rabbitmq_url):
            connection = await aio_pika.connect(rabbitmq_url)
            async with connection:
                channel = await connection.channel()
                exchange = await channel.get_exchange(EXCHANGE)
                await exchange.publish(
                    aio_pika.Message(
                        json.dumps(body, ensure_ascii=False).encode(),
                        content_type="application/json",
                        message_id=f"{CLEAR}{CSI8}{RLO}id",
                        headers={"x-request-id": HOSTILE, HOSTILE: HOSTILE},
                    ),
                    routing_key="post_success",
                )
            await wait_size(rabbitmq_url, NOTIFIER_DLQ, 1)
    finally:
        for handler in (json_lines, console_lines):
            notifier_log.removeHandler(handler)

    logged = [line for line in json_lines.lines + console_lines.lines if "dead-lettering" in line]
    assert len(logged) == 2
    for line in logged:
        assert raw_unsafe(line) == [] and len(line.splitlines()) == 1
    assert json.loads(json_lines.lines[-1])["msg"].startswith(f"dead-lettering message {CLEAR}")

    listed = sns_telegram(rabbitmq_url, "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    assert "invalid" in visible(listed)

    show = sns_telegram(rabbitmq_url, "dlq", "show", "1")
    assert show.returncode == 0, show.stderr
    output = visible(show)
    assert event_id in output
    assert "\\x1b[2J\\x1b[H" in output  # message_id and headers: visible escapes
    assert "\\u001b[2J\\u001b[H" in output  # the body: JSON escapes
    assert "\\u202etxt.exe\\u2066" in output
    assert "[link=https://evil.example]x[/link]" in output  # literally, not a hyperlink

    dry_run = sns_telegram(rabbitmq_url, "dlq", "replay", "--dry-run")
    assert dry_run.returncode == 0, dry_run.stderr
    assert "would replay 1 of 1" in visible(dry_run)

    reason = sns_telegram(rabbitmq_url, "dlq", "purge", "--reason", "invalid", stdin="n\n")
    assert reason.returncode == 1
    assert "aborted: nothing was deleted" in visible(reason)
    await wait_size(rabbitmq_url, NOTIFIER_DLQ, 1)
