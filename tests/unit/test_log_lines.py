"""What reaches a log: one line per record, no raw control character, no secret, whatever the
event, header or exception said (JSON and console formats)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from services.common.logging import ConsoleFormatter, JsonFormatter, log_context
from services.common.safe_text import escape_controls, redact, remember_secrets
from tests.unit.unsafe import UNSAFE, hostile_text, raw_unsafe

pytestmark = pytest.mark.unit


def record(msg: str, *args: object, exc: BaseException | None = None, **extra: object):
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    made = logging.LogRecord("services.test", logging.WARNING, __file__, 1, msg, args, exc_info)
    made.created = 1_772_101_800.0  # a fixed time: the same record formats the same
    made.__dict__.update(extra)
    return made


def one_line(line: str) -> str:
    assert len(line.splitlines()) == 1, line
    assert raw_unsafe(line) == [], line
    line.encode("utf-8")  # no lone surrogate: the stream can write it
    return line


def raised(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


HOSTILE = settings(max_examples=300, deadline=None, derandomize=True)
"""The property tests' settings: the same 300 hostile texts every run (never a flaky failure)."""
KNOWN_HOSTILE = [
    '\x1b[2J\x1b[Hall good\r\n{"level": "info"}',
    "\u202eexe.txt\u202c \u2066isolated\u2069 \u200f\u061c",
    "\x9b31mred \x85next \u2028line \u2029para \x7f",
    "\ud800 lone surrogate \udfff",
    "게시 완료 ✅ — Korean and emoji stay readable",
    "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07",
    "INFO fake: forged\nERRO services.notifier: second record",
    "\u202eexe.txt\x9b2J\ud800",
]
"""Texts that would forge, recolour, reorder or break a log line: each formatter is tried on
each of them, besides the generated ones."""


def known_hostile(test: Callable[..., None]) -> Callable[..., None]:
    """`test` tried on every text of `KNOWN_HOSTILE` (as hypothesis examples)."""
    for text in KNOWN_HOSTILE:
        test = example(text=text)(test)
    return test


@given(text=hostile_text())
@known_hostile
@HOSTILE
def test_a_json_record_is_one_line_that_parses_back(text):
    with log_context(user_id=text):
        line = one_line(JsonFormatter().format(record("%s", text, field=text, exc=raised(text))))
    parsed = json.loads(line)
    assert parsed["msg"] == redact(text)
    assert parsed["field"] == redact(text)
    assert parsed["user_id"] == redact(text)
    assert parsed["exc"].startswith("Traceback (most recent call last):")
    assert redact(text).rstrip("\n") in parsed["exc"]


@given(text=hostile_text())
@known_hostile
@HOSTILE
def test_a_console_record_is_one_line_with_controls_shown(text):
    with log_context(event_id=text):
        line = one_line(ConsoleFormatter().format(record(text, field=text, exc=raised(text))))
    assert escape_controls(redact(text)) in line


def test_korean_stays_readable_in_json():
    line = JsonFormatter().format(record("✅ SNS 게시 완료: %s", "좋아요 1,234"))
    assert "✅ SNS 게시 완료: 좋아요 1,234" in line


def test_controls_are_visible_escapes_in_the_console():
    line = ConsoleFormatter().format(record("%s", "a\x1b[2Jb\u202ec\rd\x9be"))
    assert "a\\x1b[2Jb\\u202ec\\rd\\x9be" in line


def test_a_field_cannot_pass_for_another_in_the_console():
    line = ConsoleFormatter().format(record("sent", user_id="1 admin=true"))
    assert line.endswith('user_id="1 admin=true"')


def test_a_field_cannot_replace_the_message_or_level_in_json():
    with log_context(msg="forged", level="debug"):
        parsed = json.loads(JsonFormatter().format(record("real", logger="forged")))
    assert (parsed["msg"], parsed["level"], parsed["logger"]) == (
        "real",
        "warning",
        "services.test",
    )


SECRETS = [
    ("amqp://sns:s3cr3t-Pass@rabbitmq:5672/", "s3cr3t-Pass"),
    ("postgresql+psycopg://sns:pa%2Fss%40w0rd@db:5432/sns", "pa%2Fss%40w0rd"),
    ("postgresql://sns:raw/slash@db/sns", "raw/slash"),
    ("amqps://user:raw@at@host/vhost", "raw@at"),
    ("redis://:only-a-password@cache:6379/0", "only-a-password"),
    ("postgresql://a b:spaced-user@127.0.0.1:1/db", "spaced-user"),  # found by a property test
    ("postgresql://\n:line-break-user@127.0.0.1:1/db", "line-break-user"),  # found too
    ("postgresql://sns:pw x@127.0.0.1:1/db", "pw x"),  # found too: SQLAlchemy accepts it
    ("postgresql://db/sns?user=sns&password=query-secret", "query-secret"),
    ("https://api.telegram.org/bot123456:AAE-secret_token/sendMessage", "AAE-secret_token"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
@pytest.mark.parametrize("formatter", [JsonFormatter(), ConsoleFormatter()])
def test_no_password_in_a_url_reaches_a_log(formatter, text, secret):
    line = formatter.format(
        record("cannot connect to %s", text, url=text, exc=raised(f"connect({text!r}) failed"))
    )
    assert secret not in line
    assert "***" in line or "<redacted>" in line


@pytest.fixture
def configured():
    """Remember secrets of a given environment for one test, then forget them."""
    yield remember_secrets
    remember_secrets({})


def test_a_configured_password_is_hidden_even_where_a_parser_quotes_it_alone(configured):
    configured(
        {
            "DATABASE_URL": "postgresql://sns:pa ss-word@db/sns",
            "CHAT_ID_ENCRYPTION_KEY": "new-fernet-key-1,old-fernet-key-2",
            "JWT_SECRET": "jwt-secret-of-the-platform",
            "RABBITMQ_URL": "amqp://guest:guest@localhost:5672/",  # too short to remember
            "HOME": "/root/somewhere",
        }
    )
    message = 'invalid connection option: unexpected spaces found in "pa ss-word"'
    exc = raised("keys old-fernet-key-2 and jwt-secret-of-the-platform refused")
    for formatter in (JsonFormatter(), ConsoleFormatter()):
        line = formatter.format(record(message, exc=exc, user="guest", home="/root/somewhere"))
        for secret in ("pa ss-word", "old-fernet-key-2", "jwt-secret-of-the-platform"):
            assert secret not in line
        assert "guest" in line and "/root/somewhere" in line


def test_a_service_process_never_logs_its_configured_secrets():
    program = (
        "import logging, os\n"
        "from services.common.logging import configure_logging\n"
        "configure_logging('INFO', 'json')\n"
        "logging.getLogger('lib').error('refused %s', os.environ['JWT_SECRET'])\n"
    )
    env = {**os.environ, "JWT_SECRET": "a-jwt-secret-quoted-by-a-library"}
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(result.stderr)["msg"] == "refused ***"


def test_remembering_again_replaces_what_was_remembered(configured):
    configured({"TELEGRAM_BOT_TOKEN": "first-value-123"})
    configured({"TELEGRAM_BOT_TOKEN": "second-value-456"})
    assert redact("first-value-123 second-value-456") == "first-value-123 ***"


def test_a_url_without_password_is_kept():
    plain = "postgresql://postgres@localhost:5432/sns_telegram and https://example.com:8443/a"
    assert redact(plain) == plain


@given(
    scheme=st.sampled_from(["amqp", "amqps", "postgresql", "postgresql+psycopg", "redis", "https"]),
    user=st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", max_size=12),
    password=st.text(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!$&'()*+,;=%-._~:@/",
        min_size=6,
        max_size=40,
    ),
    around=st.tuples(hostile_text(max_size=20), hostile_text(max_size=20)),
)
@example(scheme="amqp", user="guest", password="se@cr/et:x", around=("", ""))
@HOSTILE
def test_a_url_password_never_survives_redaction(scheme, user, password, around):
    before, after = around
    formatters = (JsonFormatter(), ConsoleFormatter())
    text = f"{before} {scheme}://{user}:{password}@host.example:5672/vhost {after}"
    without = text.replace(f":{password}@", ":@")
    assume(all(password not in f.format(record("%s", without)) for f in formatters))
    for formatter in formatters:
        assert password not in formatter.format(record("%s", text))


@pytest.mark.parametrize("unit", ["a.", "x://u:", "eyJ", "eyJa.b", "bot1", "Bearer ", "\x1b["])
def test_a_huge_hostile_message_is_formatted_without_stalling(unit):
    # Quadratic patterns took minutes on these (one was found: "eyJ" * 50,000 took 22 s).
    text = unit * (400_000 // len(unit))
    assert one_line(JsonFormatter().format(record("%s", text)))
    assert one_line(ConsoleFormatter().format(record("%s", text)))


def test_unsafe_is_what_the_issue_lists():
    for char in "\x00\x1b\r\b\n\t\x7f\x80\x9b\x9f\u202a\u202e\u2066\u2069\u200e\u200f\u061c":
        assert char in UNSAFE
