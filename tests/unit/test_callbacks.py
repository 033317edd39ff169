"""Signed callback data: fits Telegram's 64 bytes, carries when it was signed, cannot be replayed
in another chat, and no data at all makes `verify` raise."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.common.callbacks import (
    MAX_BYTES,
    CallbackError,
    Signed,
    callback_key,
    parse_short_uuid,
    short_uuid,
    sign,
    verify,
)
from tests.support.examples import AT as NOW

pytestmark = pytest.mark.unit

KEY = callback_key("123456:test-token")


def undated(key: bytes, chat_id: int, action: str, argument: str) -> str:
    """A button as signed before buttons were dated (`<action>:<argument>:<signature>`)."""
    digest = hmac.new(key, f"{chat_id}:{action}:{argument}".encode(), hashlib.sha256).digest()
    return f"{action}:{argument}:{base64.urlsafe_b64encode(digest).decode()[:16]}"


def test_a_retry_button_fits_and_verifies_in_its_own_chat_with_its_date():
    event_id = uuid.uuid4()
    data = sign(KEY, 42, "r", short_uuid(event_id), issued_at=NOW)
    assert len(data.encode()) <= 64
    signed = verify(KEY, 42, data)
    assert signed is not None
    assert signed.action == "r" and parse_short_uuid(signed.argument) == event_id
    assert signed.issued_at == NOW
    assert signed.age(NOW + timedelta(days=7)) == timedelta(days=7)


def test_every_button_of_the_project_fits_with_its_date():
    # The longest of each kind, pressed in a supergroup (the longest chat ids).
    chat = -1_009_999_999_999
    far = datetime(2100, 1, 1, tzinfo=UTC)
    for action, argument in [
        ("r", short_uuid(uuid.uuid4())),
        ("m", "automation_executed"),
        ("su", "automation_executed"),
        ("sq", "2300-0800"),
        ("sl", "en"),
    ]:
        assert len(sign(KEY, chat, action, argument, issued_at=far)) <= MAX_BYTES


def test_data_pressed_in_another_chat_or_altered_or_from_another_bot_is_refused():
    data = sign(KEY, 42, "m", "post_failure", issued_at=NOW)
    assert verify(KEY, 43, data) is None
    assert verify(KEY, 42, data.replace("post_failure", "post_success")) is None
    assert verify(callback_key("999:other"), 42, data) is None
    assert verify(KEY, 42, "m:post_failure") is None
    assert verify(KEY, 42, None) is None
    assert verify(KEY, 42, "x" * 65) is None


def test_the_date_cannot_be_moved():
    data = sign(KEY, 42, "r", "abc", issued_at=NOW)
    action, argument, issued, signature = data.split(":")
    for other in (int(issued, 36) + 1, int(issued, 36) + 7 * 86400):
        moved = f"{action}:{argument}:{format_base36(other)}:{signature}"
        assert verify(KEY, 42, moved) is None
    # Another spelling of the same number is not accepted either.
    assert verify(KEY, 42, f"{action}:{argument}:0{issued}:{signature}") is None
    assert verify(KEY, 42, f"{action}:{argument}:{issued.upper()}:{signature}") is None


def format_base36(value: int) -> str:
    digits = string.digits + string.ascii_lowercase
    out = ""
    while value:
        value, digit = divmod(value, 36)
        out = digits[digit] + out
    return out or "0"


def test_a_genuine_undated_button_of_the_older_format_is_recognised_as_undated():
    old = undated(KEY, 42, "r", "abc")
    assert verify(KEY, 42, old) == Signed("r", "abc", None)
    assert verify(KEY, 42, old).age(NOW) is None
    assert verify(KEY, 43, old) is None
    assert verify(KEY, 42, old[:-1] + ("A" if old[-1] != "A" else "B")) is None


def test_data_that_would_not_fit_or_cannot_be_signed_is_refused_when_signing():
    with pytest.raises(CallbackError):
        sign(KEY, 42, "m", "x" * 60)
    for action, argument in [("m", "a:b"), ("m", "a b"), ("", "x"), ("m", "é"), ("m\n", "x")]:
        with pytest.raises(CallbackError):
            sign(KEY, 42, action, argument)


def test_short_uuid_round_trips_and_rejects_garbage():
    value = uuid.uuid4()
    assert len(short_uuid(value)) == 22
    assert parse_short_uuid(short_uuid(value)) == value
    assert parse_short_uuid("not-a-uuid") is None


# ----------------------------------------------------------------------- properties
def as_received(raw: bytes) -> str:
    """Bytes as a str the way a JSON decoder may hand them over (lone surrogates included)."""
    return raw.decode("utf-8", "surrogateescape")


any_data = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.binary(max_size=200).map(as_received),
    st.integers(),
    st.lists(st.text(alphabet=":ab0", max_size=5), max_size=8).map(":".join),
)


@given(data=any_data, chat_id=st.integers())
@example(data="\ud800", chat_id=42)
@example(data="r:x:zzzzzzzz:AAAAAAAAAAAAAAAA", chat_id=42)
@example(data="r:x:" + "z" * 7 + ":AAAAAAAAAAAAAAAA", chat_id=42)
@example(data=":::", chat_id=0)
@example(data="a" * 64, chat_id=-(2**70))
@settings(max_examples=500)
def test_verify_never_raises_and_accepts_nothing_it_did_not_sign(data, chat_id):
    assert verify(KEY, chat_id, data) is None


fields = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=24)


@given(
    chat_id=st.integers(min_value=-(2**63), max_value=2**63),
    action=fields,
    argument=fields | st.just(""),
    seconds=st.integers(min_value=0, max_value=2**33),
    flip=st.integers(min_value=0),
)
def test_whatever_is_signed_verifies_as_itself_and_no_changed_byte_does(
    chat_id, action, argument, seconds, flip
):
    issued_at = datetime.fromtimestamp(seconds, UTC)
    try:
        data = sign(KEY, chat_id, action, argument, issued_at=issued_at)
    except CallbackError:  # only because it would not fit
        assert len(f"{action}:{argument}:{format_base36(seconds)}:") + 16 > MAX_BYTES
        return
    assert verify(KEY, chat_id, data) == Signed(action, argument, issued_at)
    position = flip % len(data)
    changed = data[:position] + ("b" if data[position] != "b" else "c") + data[position + 1 :]
    assert verify(KEY, chat_id, changed) is None
