"""Signed callback data: fits Telegram's 64 bytes, and cannot be replayed in another chat."""

from __future__ import annotations

import uuid

import pytest

from services.common.callbacks import (
    CallbackError,
    callback_key,
    parse_short_uuid,
    short_uuid,
    sign,
    verify,
)

pytestmark = pytest.mark.unit

KEY = callback_key("123456:test-token")


def test_a_retry_button_fits_and_verifies_in_its_own_chat():
    event_id = uuid.uuid4()
    data = sign(KEY, 42, "r", short_uuid(event_id))
    assert len(data.encode()) <= 64
    action, argument = verify(KEY, 42, data)
    assert action == "r" and parse_short_uuid(argument) == event_id


def test_data_pressed_in_another_chat_or_altered_or_from_another_bot_is_refused():
    data = sign(KEY, 42, "m", "post_failure")
    assert verify(KEY, 43, data) is None
    assert verify(KEY, 42, data.replace("post_failure", "post_success")) is None
    assert verify(callback_key("999:other"), 42, data) is None
    assert verify(KEY, 42, "m:post_failure") is None
    assert verify(KEY, 42, None) is None
    assert verify(KEY, 42, "x" * 65) is None


def test_data_that_would_not_fit_is_refused_when_signing():
    with pytest.raises(CallbackError):
        sign(KEY, 42, "m", "x" * 60)
    with pytest.raises(CallbackError):
        sign(KEY, 42, "m", "a:b")


def test_short_uuid_round_trips_and_rejects_garbage():
    value = uuid.uuid4()
    assert len(short_uuid(value)) == 22
    assert parse_short_uuid(short_uuid(value)) == value
    assert parse_short_uuid("not-a-uuid") is None
