"""What `sns-telegram dlq` prints of a dead letter cannot rewrite the operator's terminal: no raw
control or bidi character, no rich markup taken from the message, no secret (property tests)."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rich.console import Console

from services.ops.amqp import OpsError
from services.ops.dlq import Listing
from services.ops.dlq_cli import (
    _fail,
    ask_on_terminal,
    letters_table,
    print_letter,
    print_listing,
)
from services.ops.letters import DeadLetter
from shared.contract import NOTIFIER_DLQ
from tests.unit.unsafe import hostile_text, raw_unsafe

pytestmark = pytest.mark.unit

MARKUP = "[link=https://evil.example]click[/link] [bold red]alarm[/] [/]"
ESCAPES = "\x1b[2J\x1b[H\x1b]8;;https://evil.example\x07\x9b31m\u202eexe.txt\u2066\r\b"


def console(*, terminal: bool = False) -> tuple[Console, io.StringIO]:
    """The most permissive console: markup and highlighting on (the CLI turns them off)."""
    buffer = io.StringIO()
    made = Console(
        file=buffer,
        width=240,
        markup=True,
        highlight=True,
        force_terminal=terminal,
        color_system="truecolor" if terminal else None,
    )
    return made, buffer


def printed(letter: DeadLetter, error: str = "boom") -> str:
    out, buffer = console()
    print_letter(letter, NOTIFIER_DLQ, out)
    print_listing(Listing(NOTIFIER_DLQ, 2, [letter]), out)
    out.print(letters_table([letter], title="would replay", targets=True))
    _fail(out, OpsError(error))
    return buffer.getvalue()


def assert_safe(output: str) -> None:
    assert raw_unsafe(output, allow="\n") == []
    output.encode("utf-8")


header_values = st.one_of(
    hostile_text(),
    st.integers(),
    st.binary(max_size=50),
    st.lists(hostile_text(max_size=30), max_size=3),
    st.dictionaries(hostile_text(max_size=20), hostile_text(max_size=30), max_size=3),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), hostile_text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile_text(max_size=20), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=200),
    hostile_text().map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(hostile_text(max_size=20), json_values, max_size=6).map(
        lambda v: json.dumps({"type": "post_success", "data": v}).encode()
    ),
)
letters = st.builds(
    DeadLetter,
    position=st.integers(1, 10**6),
    body=bodies,
    headers=st.dictionaries(hostile_text(max_size=30), header_values, max_size=6),
    properties=st.fixed_dictionaries(
        {},
        optional={
            "message_id": hostile_text(max_size=60),
            "type": hostile_text(max_size=30),
            "app_id": hostile_text(max_size=30),
            "correlation_id": hostile_text(max_size=30),
        },
    ),
    dlq_routing_key=st.one_of(st.none(), hostile_text(max_size=40)),
)


@given(letter=letters, error=hostile_text())
@example(
    letter=DeadLetter(
        1,
        json.dumps({"event_id": ESCAPES, "type": MARKUP, "data": {"content": ESCAPES}}).encode(),
        headers={"x-dlq-reason": ESCAPES, "x-dlq-error": MARKUP, ESCAPES: [ESCAPES]},
        properties={"message_id": ESCAPES},
        dlq_routing_key=MARKUP,
    ),
    error=ESCAPES + MARKUP,
)
@example(letter=DeadLetter(1, b'"\\ud800 \\u202e \\u009b"'), error="\ud800")
@example(letter=DeadLetter(1, b"\xff\xfe\x1b[2J not json \xc2\x9b"), error="")
@settings(max_examples=200, deadline=None, derandomize=True)
def test_no_dead_letter_prints_a_raw_control_character(letter, error):
    assert_safe(printed(letter, error))


def test_escape_sequences_are_shown_not_obeyed():
    body = json.dumps({"type": "post_success", "data": {"content": ESCAPES}}, ensure_ascii=False)
    letter = DeadLetter(1, body.encode(), headers={"x-dlq-error": ESCAPES})
    output = printed(letter, ESCAPES)
    assert_safe(output)
    assert "\\x1b[2J\\x1b[H" in output  # the error header, visibly
    assert "\\u001b[2J\\u001b[H" in output  # the body: JSON escapes
    assert "\\u009b31m\\u202eexe.txt\\u2066" in output


def test_rich_markup_in_a_message_is_printed_literally():
    body = json.dumps({"type": MARKUP, "data": {"content": MARKUP}}).encode()
    letter = DeadLetter(
        1, body, headers={"x-dlq-reason": MARKUP, "x-dlq-error": MARKUP}, properties={}
    )
    out, buffer = console(terminal=True)
    print_letter(letter, NOTIFIER_DLQ, out)
    print_listing(Listing(NOTIFIER_DLQ, 1, [letter]), out)
    _fail(out, OpsError(MARKUP))
    output = buffer.getvalue()
    assert "\x1b]8;" not in output  # no hyperlink was made
    plain = Console(file=io.StringIO(), width=240)
    with plain.capture() as captured:
        print_letter(letter, NOTIFIER_DLQ, plain)
        _fail(plain, OpsError(MARKUP))
    assert captured.get().count(MARKUP) >= 3  # the reason, the error header, the failure


def test_the_purge_question_shows_a_reason_literally():
    out, buffer = console(terminal=True)
    question = f"Delete 1 message(s) ({MARKUP} 1, {ESCAPES} 1) from {NOTIFIER_DLQ} for good?"
    assert ask_on_terminal(question, console=out, stream=io.StringIO("n\n")) is False
    output = buffer.getvalue()
    assert "\x1b]8;" not in output  # no hyperlink was made
    assert MARKUP in output
    assert "\\x1b[2J\\x1b[H" in output
    assert raw_unsafe(output.replace("\x1b[", ""), allow="\n") == []  # only the prompt's styles


def test_a_password_in_a_dead_letter_is_not_printed():
    url = "amqp://sns:hunter2-secret@rabbitmq:5672/"
    body = json.dumps({"type": "post_failure", "data": {"error": f"cannot reach {url}"}}).encode()
    letter = DeadLetter(1, body, headers={"x-dlq-error": f"connect to {url} failed"})
    output = printed(letter, f"cannot connect to RabbitMQ at {url}")
    assert "hunter2-secret" not in output
    assert "amqp://sns:***@rabbitmq:5672/" in output


def test_korean_stays_readable():
    body = json.dumps({"data": {"content": "게시 완료 ✅"}}, ensure_ascii=False).encode()
    assert "게시 완료 ✅" in printed(DeadLetter(1, body, headers={"x-dlq-error": "오류"}))
