"""Pure core of preferences and buttons: changes, the /settings keyboard, retry events, texts."""

import string
import uuid
from datetime import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.common.callbacks import MAX_BYTES, callback_key, sign, verify
from services.linker import menu, texts
from services.linker.preferences import (
    MAX_THREAD_ID,
    MUTABLE_TYPES,
    Preferences,
    is_iana_timezone,
    ordered_types,
    parse_hhmm,
)
from services.linker.retry import retry_event, retry_event_id
from shared.contract import EventType, PostRetryRequestedData
from shared.models import Activity
from tests.support.examples import AT as NOW

pytestmark = pytest.mark.unit

KEY = callback_key("42:linker-tests")


def test_muting_keeps_each_type_once_in_display_order():
    prefs = Preferences().muting("daily_summary", True).muting("post_success", True)
    assert prefs.muted_types == ("post_success", "daily_summary")
    assert prefs.muting("post_success", True) == prefs
    assert prefs.muting("post_success", False).muted_types == ("daily_summary",)
    assert ordered_types(["nonsense", "post_failure", "post_failure"]) == ("post_failure",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("00:00", time(0)), ("07:05", time(7, 5)), ("23:59", time(23, 59))],
)
def test_times_of_day(text, expected):
    assert parse_hhmm(text) == expected


@pytest.mark.parametrize("text", ["24:00", "7:00", "07:60", "0700", " 07:00", "07:00 ", ""])
def test_not_times_of_day(text):
    assert parse_hhmm(text) is None


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("Asia/Seoul", True),
        ("UTC", True),
        ("America/Argentina/Buenos_Aires", True),
        ("asia/seoul", False),
        ("localtime", False),
        ("../etc/passwd", False),
        ("", False),
        ("+09:00", False),
    ],
)
def test_time_zones_are_iana_names(name, valid):
    assert is_iana_timezone(name) is valid


@pytest.mark.parametrize(
    ("action", "argument", "expected"),
    [
        ("sm", "post_success", Preferences(muted_types=("post_success",))),
        ("su", "post_success", Preferences()),
        ("sl", "en", Preferences(language="en")),
        ("sq", "2200-0700", Preferences(quiet_hours=(time(22), time(7)))),
        ("sq", "off", Preferences()),
        ("sv", "post_success.silent", Preferences(silent_types=("post_success", "daily_summary"))),
        ("sv", "daily_summary.loud", Preferences(silent_types=())),
        ("sv", "daily_summary.muted", Preferences(muted_types=("daily_summary",), silent_types=())),
        ("sh", "silent", Preferences(quiet_mode="silent")),
        ("sh", "hold", Preferences()),
        ("sp", "off", Preferences(link_previews=False)),
        ("sp", "on", Preferences()),
        ("si", "off", Preferences(post_images=False)),
        ("si", "on", Preferences()),
        ("st", "general", Preferences()),
    ],
)
def test_settings_buttons_set_values(action, argument, expected):
    change = menu.settings_change(action, argument)
    assert change is not None
    assert change(Preferences()) == expected
    assert change(change(Preferences())) == expected  # pressing twice changes nothing more


@pytest.mark.parametrize(
    ("action", "argument"),
    [
        ("sm", "telegram.linked"),
        ("sl", "fr"),
        ("sq", "2200-2200"),
        ("sq", "2500-0700"),
        ("sq", "22-07"),
        ("sq", ""),
        ("sv", "post_success"),
        ("sv", "post_success.quiet"),
        ("sv", "telegram.linked.silent"),
        ("sh", "later"),
        ("sp", "true"),
        ("si", "false"),
        ("si", ""),
        ("st", "42"),
        ("st", "General"),
        ("zz", "en"),
    ],
)
def test_settings_buttons_refuse_what_is_not_ours(action, argument):
    assert menu.settings_change(action, argument) is None


@pytest.mark.parametrize("language", ["ko", "en"])
def test_the_settings_keyboard_shows_the_state_and_fits_callback_data(language):
    prefs = Preferences(
        muted_types=("post_failure",), quiet_hours=(time(23), time(8)), language=language
    )
    rows = menu.settings_keyboard(prefs)
    buttons = [button for row in rows for button in row]
    by_action = {(b.action, b.argument): b.label for b in buttons}
    # Each type's button shows its mode and sets the next: loud -> silent -> muted -> loud.
    assert by_action[("sv", "post_success.silent")] == texts.type_button(
        "post_success", "loud", language
    )
    assert by_action[("sv", "daily_summary.muted")].startswith("🔈")  # silent by default
    assert by_action[("sv", "post_failure.loud")].startswith("🔕")
    assert by_action[("sh", "hold")].startswith(texts.CHOSEN)
    assert not by_action[("sh", "silent")].startswith(texts.CHOSEN)
    assert by_action[("sp", "on")].startswith(texts.CHOSEN)
    assert not by_action[("sp", "off")].startswith(texts.CHOSEN)
    assert by_action[("si", "on")].startswith(texts.CHOSEN)
    assert not by_action[("si", "off")].startswith(texts.CHOSEN)
    assert not any(b.action == "st" for b in buttons)  # no topic: nothing to move back
    assert by_action[("sq", "2300-0800")].startswith(texts.CHOSEN)
    assert not by_action[("sq", "off")].startswith(texts.CHOSEN)
    assert by_action[("sl", language)].startswith(texts.CHOSEN)
    for button in buttons:
        data = sign(KEY, -1_000_000_000_001, button.action, button.argument)
        assert len(data.encode()) <= MAX_BYTES
        assert verify(KEY, -1_000_000_000_001, data)[:2] == (button.action, button.argument)
        assert menu.settings_change(button.action, button.argument) is not None


ARGUMENTS = st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=24) | (
    st.sampled_from(["on", "off", "general", "General", "true", "0", "post_success.muted"])
)


@given(
    action=st.sampled_from([*menu.SETTINGS_ACTIONS, "zz"]),
    argument=ARGUMENTS,
    images=st.booleans(),
    thread=st.none() | st.integers(1, MAX_THREAD_ID),
)
@example(action="si", argument="off", images=True, thread=None)
@example(action="st", argument="general", images=False, thread=MAX_THREAD_ID)
def test_any_settings_button_sets_a_value_or_is_refused(action, argument, images, thread):
    """Whatever a signed settings button carries: refused, or a change that is the same when
    pressed again; only `si` touches post images, only `st general` the topic (to General)."""
    before = Preferences(post_images=images, message_thread_id=thread)
    change = menu.settings_change(action, argument)
    if change is None:
        return
    after = change(before)
    assert change(after) == after
    expected_images = (argument == "on") if action == "si" else images
    assert after.post_images is expected_images
    assert after.message_thread_id == (None if action == "st" else thread)


def test_moving_back_to_general_clears_the_topic_and_nothing_else():
    change = menu.settings_change("st", "general")
    assert change is not None
    prefs = Preferences(message_thread_id=123, post_images=False, language="en")
    assert change(prefs) == Preferences(post_images=False, language="en")


@pytest.mark.parametrize(
    ("language", "line", "label"),
    [
        ("ko", "📌 토픽: #123", "📌 일반(General)으로 옮기기"),
        ("en", "📌 Topic: #123", "📌 Move to General"),
    ],
)
def test_a_topic_is_shown_with_a_button_back_to_general(language, line, label):
    in_topic = Preferences(message_thread_id=123, language=language)
    assert line in texts.settings_text(in_topic).splitlines()
    rows = menu.settings_keyboard(in_topic)
    assert rows[-1] == [menu.Button(label, "st", "general")]  # last, on a row of its own
    general = Preferences(language=language)
    assert "📌" not in texts.settings_text(general)
    assert all(b.action != "st" for row in menu.settings_keyboard(general) for b in row)
    # The largest topic id a link can hold still fits in the message and the button's data.
    biggest = Preferences(message_thread_id=MAX_THREAD_ID, language=language)
    assert f"#{MAX_THREAD_ID}" in texts.settings_text(biggest)
    assert len(sign(KEY, -1_000_000_000_001, "st", "general").encode()) <= MAX_BYTES


def test_settings_text_in_both_languages():
    korean = texts.settings_text(Preferences(muted_types=("post_success",), timezone="Asia/Seoul"))
    assert korean.startswith("⚙️ 알림 설정")
    assert "🔕 게시 완료: 꺼짐" in korean and "🔈 일일 리포트: 무음 (매일 09:00)" in korean
    assert "🔔 게시 실패: 켜짐" in korean and "🖼 링크 미리보기: 켜짐" in korean
    assert "📷 게시물 이미지: 켜짐" in korean
    assert "🌙 방해 금지 시간: 꺼짐" in korean and "Asia/Seoul" in korean
    english = texts.settings_text(Preferences(quiet_hours=(time(22), time(7)), language="en"))
    assert english.startswith("⚙️ Notification settings")
    assert "🌙 Quiet hours: 22:00–07:00" in english and "🌐 Language: English" in english
    assert "sent together when it ends" in english
    silently = texts.settings_text(
        Preferences(quiet_hours=(time(22), time(7)), quiet_mode="silent", language="en")
    )
    assert "22:00–07:00 (notifications in this time arrive at once, without a sound)" in silently
    assert "🔈 Daily report: silent (daily at 09:00)" in silently
    off = Preferences(link_previews=False, language="en")
    assert "🖼 Link previews: off" in texts.settings_text(off)
    assert "📷 Post images: on" in texts.settings_text(off)
    no_images = texts.settings_text(Preferences(post_images=False))
    assert "📷 게시물 이미지: 꺼짐" in no_images
    assert "📷 Post images: off" in texts.settings_text(
        Preferences(post_images=False, language="en")
    )


def test_a_type_has_one_mode():
    prefs = Preferences()
    for event_type in MUTABLE_TYPES:
        for mode in ("loud", "silent", "muted", "silent", "loud"):
            prefs = prefs.with_mode(event_type, mode)
            assert prefs.mode(event_type) == mode
    # Muted wins over silent when the API sets both lists.
    assert (
        Preferences(muted_types=("post_success",), silent_types=("post_success",)).mode(
            "post_success"
        )
        == "muted"
    )


def test_answers_fit_a_toast():
    for language in ("ko", "en"):
        for event_type in MUTABLE_TYPES:
            assert len(texts.answer("muted", language, event_type)) <= 200
    assert texts.answer("muted", "ko", "post_failure") == "🔕 게시 실패 알림을 끕니다"
    assert texts.answer("muted", "en", "post_failure") == "🔕 Post failed notifications muted"


def failure(details, platform="instagram", post_id=None):
    return Activity(
        event_id=uuid.uuid4(),
        user_id="123",
        type="post_failure",
        occurred_at=NOW,
        platform=platform,
        post_id=post_id,
        details=details,
    )


def test_a_retry_carries_the_original_data_and_the_failure_id():
    original = {"platform": "Instagram", "error": "Rate limit", "post_id": "p-1", "extra": [1]}
    activity = failure({"post_id": "p-1", "error": "Rate limit", "data": original})
    event = retry_event(activity, "press-7", NOW)
    assert event is not None
    assert event.type is EventType.POST_RETRY_REQUESTED and event.user_id == "123"
    assert (
        event.event_id
        == retry_event_id("press-7")
        == retry_event(activity, "press-7", NOW).event_id
    )
    assert event.event_id != retry_event_id("press-8")
    assert event.data == {**original, "original_event_id": str(activity.event_id)}
    assert PostRetryRequestedData.model_validate(event.data).original_event_id == activity.event_id


def test_a_retry_of_a_row_without_the_data_is_rebuilt_from_the_row():
    activity = failure({"error": "Timeout"}, platform="twitter", post_id="p-2")
    event = retry_event(activity, "press-1", NOW)
    assert event is not None
    assert event.data == {
        "platform": "twitter",
        "error": "Timeout",
        "post_id": "p-2",
        "original_event_id": str(activity.event_id),
    }


def test_a_row_without_a_platform_cannot_be_retried():
    assert retry_event(failure({"error": "x"}, platform=None), "press-1", NOW) is None


def test_the_retry_reply_names_the_platform_as_the_notification_does():
    assert texts.retry_requested("instagram", "ko").startswith("🔄 Instagram 게시 재시도")
    assert texts.retry_requested("x", "en").startswith("🔄 Retry of the X post requested")
