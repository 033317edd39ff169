"""Quiet hours on the user's clock, and the inline buttons of each notification."""

import uuid
from datetime import UTC, datetime, time

import pytest

from services.common.callbacks import callback_key, parse_short_uuid, verify
from services.notifier.keyboards import keyboard, reply_markup, web_url
from services.notifier.preferences import quiet_until
from shared.contract import EventType

pytestmark = pytest.mark.unit


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "start", "end", "until"),
    [
        # 22:00-07:00 in Seoul (UTC+9): 23:30 local is quiet until 07:00 the next morning.
        ("2026-02-26T14:30", "Asia/Seoul", "22:00", "07:00", "2026-02-26T22:00"),
        # 03:00 local, after midnight: same night, ends 07:00 that day.
        ("2026-02-26T18:00", "Asia/Seoul", "22:00", "07:00", "2026-02-26T22:00"),
        # 07:00 local exactly: the end is not inside.
        ("2026-02-26T22:00", "Asia/Seoul", "22:00", "07:00", None),
        # 22:00 local exactly: the start is inside.
        ("2026-02-26T13:00", "Asia/Seoul", "22:00", "07:00", "2026-02-26T22:00"),
        # midday: not quiet.
        ("2026-02-26T03:00", "Asia/Seoul", "22:00", "07:00", None),
        # a window within one day (13:00-14:00 UTC).
        ("2026-02-26T13:15", "UTC", "13:00", "14:00", "2026-02-26T14:00"),
        ("2026-02-26T14:15", "UTC", "13:00", "14:00", None),
        # New York, the night the clocks go forward (02:00 -> 03:00 on 2026-03-08).
        ("2026-03-08T04:00", "America/New_York", "22:00", "07:00", "2026-03-08T11:00"),
        # an unknown zone counts as UTC.
        ("2026-02-26T23:00", "Mars/Olympus", "22:00", "07:00", "2026-02-27T07:00"),
    ],
)
def test_quiet_until(now, zone, start, end, until):
    expected = utc(until) if until else None
    assert quiet_until(utc(now), zone, time.fromisoformat(start), time.fromisoformat(end)) == (
        expected
    )


@pytest.mark.parametrize(("start", "end"), [(None, None), (time(7), None), (time(7), time(7))])
def test_no_quiet_hours_without_a_window(start, end):
    assert quiet_until(utc("2026-02-26T07:00"), "UTC", start, end) is None


KEY = callback_key("123456:test-token")
EVENT_ID = uuid.uuid4()


def test_a_failure_has_retry_and_mute_signed_for_its_chat():
    buttons = keyboard(EventType.POST_FAILURE, EVENT_ID, {"platform": "x", "error": "e"}, "ko")
    markup = reply_markup(buttons, KEY, -100123)
    assert markup is not None
    (row,) = markup["inline_keyboard"]
    assert [b["text"] for b in row] == ["🔄 다시 시도", "🔕 이 유형 알림 끄기"]
    retry, mute = (verify(KEY, -100123, b["callback_data"]) for b in row)
    assert retry is not None and retry[0] == "r" and parse_short_uuid(retry[1]) == EVENT_ID
    assert mute is not None and mute[:2] == ("m", "post_failure")
    assert all(len(b["callback_data"].encode()) <= 64 for b in row)
    assert verify(KEY, 42, row[0]["callback_data"]) is None  # another chat: refused


def test_a_success_with_a_url_has_view_post_then_mute_in_english():
    data = {"platform": "x", "post_url": " https://x.com/p/1 "}
    buttons = keyboard(EventType.POST_SUCCESS, EVENT_ID, data, "en")
    markup = reply_markup(buttons, KEY, 7)
    assert markup is not None
    view, actions = markup["inline_keyboard"]
    assert view == [{"text": "🔗 View post", "url": "https://x.com/p/1"}]
    assert [b["text"] for b in actions] == ["🔕 Mute this type"]


def test_the_daily_report_can_be_muted_and_nothing_else():
    data = {"date": "2026-02-26"}
    (row,) = keyboard(EventType.DAILY_SUMMARY, EVENT_ID, data, "ko")
    assert row == [{"text": "🔕 이 유형 알림 끄기", "action": "m", "argument": "daily_summary"}]
    assert reply_markup([], KEY, 7) is None


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://instagram.com/p/abc", True),
        ("http://example.com", True),
        ("javascript:alert(1)", False),
        ("tg://resolve?domain=x", False),
        ("ftp://example.com/x", False),
        ("https://", False),
        ("https://exa mple.com", False),
        ("not a url", False),
        ("", False),
        (None, False),
        (42, False),
        ("https://x.com/" + "a" * 3000, False),
    ],
)
def test_only_http_urls_become_view_post_buttons(url, ok):
    assert (web_url(url) is not None) == ok
