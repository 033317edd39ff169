"""/settings, /mute, /unmute and every inline button, pressed in the stand-in (real aiogram,
PostgreSQL and RabbitMQ): each press is answered, and a forged one changes nothing."""

import asyncio
import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest
import uvicorn

from services.common.callbacks import callback_key, short_uuid, sign
from services.linker import texts
from services.linker.preferences import Preferences
from services.linker.retry import retry_event_id
from shared.contract import EventType
from shared.db import session_scope
from shared.models import Activity
from tests.linker.helpers import DEFAULT_PREFERENCES, bearer
from tests.support.ids import new_chat_id, new_user
from tests.support.processes import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SAVED = "✅ 설정을 저장했습니다"
INVALID = "⚠️ 이 버튼은 더 이상 사용할 수 없습니다"
FAILURE_DATA = {
    "platform": "Instagram",
    "error": "API rate limit exceeded",
    "post_id": "post-77",
    "content": "새 제품 출시 🎉",
}


def buttons(message) -> dict[str, str]:
    """Label -> callback data of a bot message's inline keyboard."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return {button["text"]: button["callback_data"] for row in rows for button in row}


async def settings_message(linker, chat):
    """Send /settings and return the bot's answer (a message with the keyboard)."""
    await linker.say(chat, "/settings")
    return linker.standin.bot_messages(chat)[-1]


async def record_failure(sessions, user, data=FAILURE_DATA, *, keep_data=True) -> uuid.UUID:
    """Record a post_failure activity row the way the notifier does."""
    event_id = uuid.uuid4()
    details = {"post_id": data.get("post_id"), "error": data["error"]}
    if keep_data:
        details["data"] = data
    async with session_scope(sessions) as session:
        session.add(
            Activity(
                event_id=event_id,
                user_id=user,
                type="post_failure",
                occurred_at=datetime.now(UTC),
                platform=data["platform"].lower(),
                post_id=data.get("post_id"),
                details=details,
            )
        )
    return event_id


async def linked_user(linker, **preferences) -> tuple[str, int]:
    """A new user linked to a new chat, with `preferences` set through the API; (user, chat)."""
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    if preferences:
        response = await linker.client.put(
            "/api/telegram/preferences", headers=bearer(user), json=preferences
        )
        assert response.status_code == 200, response.text
    return user, chat


class FailureMessage(NamedTuple):
    """A linked user's failed post and the failure message in their chat, with its Retry."""

    user: str
    chat: int
    failure: uuid.UUID
    retry: str
    message_id: int


async def failure_message(linker, sessions) -> FailureMessage:
    """A new user linked to a new chat, a failed post of theirs recorded, and its failure
    message sent with a Retry button."""
    user, chat = await linked_user(linker)
    failure = await record_failure(sessions, user)
    retry = linker.sign(chat, "r", short_uuid(failure))
    message_id = await linker.notify(chat, "❌ SNS 게시 실패", {"🔄 재시도": retry})
    return FailureMessage(user, chat, failure, retry, message_id)


async def nothing_more(events) -> None:
    """No further event is queued (the publish precedes the answer, so none is in flight)."""
    assert await events.queue.get(fail=False) is None


# ------------------------------------------------------------------------------ /settings
async def test_settings_buttons_change_the_preferences_and_edit_the_message(linker):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    message = await settings_message(linker, chat)
    assert message["text"] == texts.settings_text(Preferences())
    keyboard = buttons(message)
    assert set(keyboard) == {
        "🔔 게시 완료",
        "🔔 게시 실패",
        "🔔 자동화 실행",
        "🔈 일일 리포트",
        "✅ 🌙 끄기",
        "22:00–07:00",
        "23:00–08:00",
        "✅ 🌙 모아서 보내기",
        "🔈 무음으로 보내기",
        "✅ 🖼 미리보기 켜기",
        "🚫 미리보기 끄기",
        "✅ 📷 이미지 켜기",
        "🚫 이미지 끄기",
        "✅ 한국어",
        "English",
    }

    # A type's button sets its next mode: loud, then silent, then muted.
    pressed = await linker.press(chat, message["message_id"], keyboard["🔔 게시 완료"])
    assert pressed.text == SAVED
    assert (await linker.preferences(user))["silent_types"] == ["post_success", "daily_summary"]

    def shown():
        return linker.standin.bot_messages(chat)[-1]

    await eventually(lambda: shown()["edited"])
    edited = shown()
    assert edited["message_id"] == message["message_id"]
    assert "🔈 게시 완료: 무음" in edited["text"]
    await linker.press(chat, message["message_id"], buttons(edited)["🔈 게시 완료"])
    assert (await linker.preferences(user))["muted_types"] == ["post_success"]
    await eventually(lambda: "🔕 게시 완료: 꺼짐" in shown()["text"])
    assert "🔕 게시 완료" in buttons(shown())

    pressed = await linker.press(chat, message["message_id"], keyboard["🔈 무음으로 보내기"])
    assert (await linker.preferences(user))["quiet_hours_mode"] == "silent"
    await eventually(lambda: "✅ 🔈 무음으로 보내기" in buttons(shown()))
    await linker.press(chat, message["message_id"], keyboard["🚫 미리보기 끄기"])
    assert (await linker.preferences(user))["link_previews"] is False
    await eventually(lambda: "🖼 링크 미리보기: 꺼짐" in shown()["text"])
    pressed = await linker.press(chat, message["message_id"], keyboard["🚫 이미지 끄기"])
    assert pressed.text == SAVED
    assert (await linker.preferences(user))["post_images"] is False
    await eventually(lambda: "📷 게시물 이미지: 꺼짐" in shown()["text"])
    assert "✅ 🚫 이미지 끄기" in buttons(shown()) and "📷 이미지 켜기" in buttons(shown())

    await linker.press(chat, message["message_id"], keyboard["22:00–07:00"])
    assert (await linker.preferences(user))["quiet_hours"] == {"start": "22:00", "end": "07:00"}

    pressed = await linker.press(chat, message["message_id"], keyboard["English"])
    assert pressed.text == "✅ Settings saved"
    await eventually(lambda: shown()["text"].startswith("⚙️ Notification settings"))
    assert "✅ English" in buttons(shown())
    assert "✅ 🔈 Deliver silently" in buttons(shown())
    assert "✅ 🚫 Previews off" in buttons(shown())
    assert "🖼 Link previews: off" in shown()["text"]
    assert "✅ 🚫 Images off" in buttons(shown())
    assert "📷 Post images: off" in shown()["text"]
    assert "(notifications in this time arrive at once, without a sound)" in shown()["text"]
    assert await linker.preferences(user) == {
        "muted_types": ["post_success"],
        "quiet_hours": {"start": "22:00", "end": "07:00"},
        "language": "en",
        "timezone": "UTC",
        "summary_time": "09:00",
        "silent_types": ["daily_summary"],
        "quiet_hours_mode": "silent",
        "link_previews": False,
        "post_images": False,
        "message_thread_id": None,
    }

    # An old keyboard's button sets its value again: nothing changes, the press is answered.
    edits = len(shown()["edits"])
    pressed = await linker.press(chat, message["message_id"], keyboard["English"])
    assert pressed.text == "✅ Settings saved"
    assert len(shown()["edits"]) == edits
    assert (await linker.preferences(user))["language"] == "en"

    # Images back on, from the English menu: the press flips the preference and the menu.
    pressed = await linker.press(chat, message["message_id"], buttons(shown())["📷 Images on"])
    assert pressed.text == "✅ Settings saved"
    assert (await linker.preferences(user))["post_images"] is True
    await eventually(lambda: "📷 Post images: on" in shown()["text"])
    assert "✅ 📷 Images on" in buttons(shown())


async def test_settings_follow_the_api(linker):
    _, chat = await linked_user(
        linker, language="en", quiet_hours={"start": "01:00", "end": "06:30"}
    )
    message = await settings_message(linker, chat)
    assert "🌙 Quiet hours: 01:00–06:30" in message["text"]
    assert "🌙 Off" in buttons(message)  # a custom range: no preset is chosen


async def test_settings_in_a_chat_that_is_not_linked(linker):
    assert await linker.say(new_chat_id(), "/settings") == texts.STATUS_NOT_LINKED


# --------------------------------------------------------------------------- /mute /unmute
async def test_mute_and_unmute_commands(linker):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)

    assert await linker.say(chat, "/mute post_failure") == texts.muted_reply("post_failure", "ko")
    assert (await linker.preferences(user))["muted_types"] == ["post_failure"]
    assert await linker.say(chat, "/mute Automation_Executed") == texts.muted_reply(
        "automation_executed", "ko"
    )
    assert await linker.say(chat, "/unmute post_failure") == texts.unmuted_reply(
        "post_failure", "ko"
    )
    assert (await linker.preferences(user))["muted_types"] == ["automation_executed"]

    usage = await linker.say(chat, "/mute everything")
    assert usage == texts.mute_usage("mute", "ko")
    assert "post_success" in usage and "/settings" in usage

    shown = await linker.say(chat, "/mute")
    assert shown == texts.settings_text(Preferences(muted_types=("automation_executed",)))
    assert buttons(linker.standin.bot_messages(chat)[-1])

    await linker.client.put(
        "/api/telegram/preferences", headers=bearer(user), json={"language": "en"}
    )
    assert await linker.say(chat, "/unmute automation_executed") == (
        "🔔 Automation run notifications are on again."
    )


async def test_mute_in_a_chat_that_is_not_linked(linker):
    assert await linker.say(new_chat_id(), "/mute post_success") == texts.STATUS_NOT_LINKED


async def test_help_and_the_command_menu_list_the_new_commands(linker):
    reply = await linker.say(new_chat_id(), "/help")
    for command in ("/settings", "/mute", "/unmute"):
        assert command in reply
    menu = [c["command"] for c in linker.standin.state.commands]
    assert {"settings", "mute", "unmute"} <= set(menu)


# ------------------------------------------------------------------- notification buttons
async def test_mute_this_type_button(linker):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    message_id = await linker.notify(
        chat, "✅ SNS 게시 완료", {"🔕 이 알림 끄기": linker.sign(chat, "m", "post_success")}
    )
    pressed = await linker.press(chat, message_id, linker.sign(chat, "m", "post_success"))
    assert pressed.text == "🔕 게시 완료 알림을 끕니다"
    assert (await linker.preferences(user))["muted_types"] == ["post_success"]

    await linker.client.put(
        "/api/telegram/preferences", headers=bearer(user), json={"language": "en"}
    )
    pressed = await linker.press(chat, message_id, linker.sign(chat, "m", "automation_executed"))
    assert pressed.text == "🔕 Automation run notifications muted"
    assert (await linker.preferences(user))["muted_types"] == [
        "post_success",
        "automation_executed",
    ]


async def test_retry_button_publishes_the_original_data_once_per_press(linker, tap, sessions):
    events = await tap(EventType.POST_RETRY_REQUESTED)
    user, chat, failure, retry, message_id = await failure_message(linker, sessions)

    update = linker.standin.press(chat, message_id, retry)
    pressed = await linker.standin.wait_for_callback_answer(update["callback_query"]["id"])
    assert pressed.text == "🔄 재시도를 요청했습니다"
    event = await events.next()
    assert event.type is EventType.POST_RETRY_REQUESTED and event.user_id == user
    assert event.data == {**FAILURE_DATA, "original_event_id": str(failure)}
    assert event.event_id == retry_event_id(pressed.id)
    await nothing_more(events)
    await linker.standin.wait_for_messages(chat, 3)  # linked, the notification, the note
    note = linker.standin.bot_messages(chat)[-1]
    assert note["text"] == "🔄 Instagram 게시 재시도를 요청했습니다. 결과는 알림으로 알려 드립니다."

    # A second press is a second request, with its own id.
    again = await linker.press(chat, message_id, retry)
    second = await events.next()
    assert again.text == "🔄 재시도를 요청했습니다"
    assert second.event_id == retry_event_id(again.id) != event.event_id
    assert second.data == event.data
    await nothing_more(events)


async def test_retry_of_a_failure_recorded_without_its_data(linker, tap, sessions):
    user, chat = await linked_user(linker, language="en")
    events = await tap(EventType.POST_RETRY_REQUESTED)
    failure = await record_failure(sessions, user, keep_data=False)
    retry = linker.sign(chat, "r", short_uuid(failure))
    message_id = await linker.notify(chat, "❌", {"Retry": retry})
    assert (await linker.press(chat, message_id, retry)).text == "🔄 Retry requested"
    event = await events.next()
    assert event.data == {
        "platform": "instagram",
        "error": FAILURE_DATA["error"],
        "post_id": "post-77",
        "original_event_id": str(failure),
    }


async def test_retry_of_another_users_or_an_unknown_event_publishes_nothing(linker, tap, sessions):
    user, chat, other = new_user(), new_chat_id(), new_user()
    await linker.link(user, chat)
    await linker.link(other, new_chat_id())
    events = await tap(EventType.POST_RETRY_REQUESTED)
    not_theirs = await record_failure(sessions, other)
    for event_id in (not_theirs, uuid.uuid4()):
        retry = linker.sign(chat, "r", short_uuid(event_id))
        message_id = await linker.notify(chat, "❌", {"🔄": retry})
        assert (await linker.press(chat, message_id, retry)).text == (
            "⚠️ 재시도할 게시물을 찾을 수 없습니다"
        )
    malformed = linker.sign(chat, "r", "not-an-id")
    message_id = await linker.notify(chat, "❌", {"🔄": malformed})
    assert (await linker.press(chat, message_id, malformed)).text == (
        "⚠️ 재시도할 게시물을 찾을 수 없습니다"
    )
    await nothing_more(events)


async def test_a_retry_the_broker_did_not_confirm_is_answered_so(linker, sessions):
    sent = await failure_message(linker, sessions)
    await linker.app.state.links.events.close()  # the broker connection is gone
    pressed = await linker.press(sent.chat, sent.message_id, sent.retry)
    assert pressed.text == "⚠️ 재시도를 요청하지 못했습니다. 잠시 후 다시 눌러 주세요"
    assert len(linker.standin.bot_messages(sent.chat)) == 2  # no "requested" note in the chat


async def test_forged_presses_are_answered_and_change_nothing(linker, tap, sessions):
    user, chat = new_user(), new_chat_id()
    victim, victim_chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    await linker.link(victim, victim_chat)
    events = await tap(EventType.POST_RETRY_REQUESTED)
    failure = await record_failure(sessions, victim)
    argument = short_uuid(failure)
    wrong_key = callback_key("43:another-bot")
    forged = {
        # signed for the victim's chat, pressed in the attacker's
        "another chat's retry": linker.sign(victim_chat, "r", argument),
        "another chat's mute": linker.sign(victim_chat, "m", "post_success"),
        "another chat's settings": linker.sign(victim_chat, "sl", "en"),
        "a made-up signature": f"r:{argument}:AAAAAAAAAAAAAAAA",
        "a changed argument": linker.sign(chat, "m", "post_failure").replace(
            "post_failure", "post_success"
        ),
        "another bot's key": sign(wrong_key, chat, "m", "post_success"),
        "no signature": "m:post_success",
        "not ours at all": "hello",
    }
    message_id = await linker.notify(chat, "❌", {"x": "placeholder"})
    for what, data in forged.items():
        pressed = await linker.press(chat, message_id, data)
        assert pressed.text == INVALID, what
    # The attacker's own chat, signed correctly, but an action that does not exist.
    pressed = await linker.press(chat, message_id, linker.sign(chat, "zz", "1"))
    assert pressed.text == INVALID

    await nothing_more(events)
    for who in (user, victim):
        assert await linker.preferences(who) == DEFAULT_PREFERENCES


async def test_a_press_in_a_chat_that_is_not_linked_is_answered(linker):
    chat = new_chat_id()
    message_id = await linker.notify(chat, "✅", {"🔕": linker.sign(chat, "m", "post_success")})
    pressed = await linker.press(chat, message_id, linker.sign(chat, "m", "post_success"))
    assert pressed.text == "❌ 이 채팅은 계정과 연결되어 있지 않습니다"


# ------------------------------------------------------------------ lifetimes and limits
SECOND = timedelta(seconds=1)
RETRY_EXPIRED = "⌛ 재시도 버튼은 7일 후 만료됩니다. 대시보드에서 다시 시도해 주세요"
EXPIRED = "⌛ 오래된 버튼입니다. /settings 를 보내 새 메뉴를 열어 주세요"


def undated(linker, chat: int, action: str, argument: str) -> str:
    """A button as the notifier signed them before buttons were dated."""
    token = linker.settings.telegram_bot_token.get_secret_value()
    message = f"{chat}:{action}:{argument}".encode()
    digest = hmac.new(callback_key(token), message, hashlib.sha256).digest()
    return f"{action}:{argument}:{base64.urlsafe_b64encode(digest).decode()[:16]}"


async def test_a_retry_button_works_for_7_days_then_says_it_expired(linker, tap, sessions):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    events = await tap(EventType.POST_RETRY_REQUESTED)
    failure = await record_failure(sessions, user)
    now = linker.clock()
    # Dated in whole seconds: signed 7 days less a second ago, pressed now.
    fresh = linker.sign(chat, "r", short_uuid(failure), issued_at=now - timedelta(days=7) + SECOND)
    old = linker.sign(chat, "r", short_uuid(failure), issued_at=now - timedelta(days=7, seconds=1))
    message_id = await linker.notify(chat, "❌", {"🔄": fresh})
    assert (await linker.press(chat, message_id, fresh)).text == "🔄 재시도를 요청했습니다"
    await events.next()
    assert (await linker.press(chat, message_id, old)).text == RETRY_EXPIRED
    linker.clock.advance(seconds=1)  # the fresh one is now older than 7 days, too
    assert (await linker.press(chat, message_id, fresh)).text == RETRY_EXPIRED
    await linker.client.put(
        "/api/telegram/preferences", headers=bearer(user), json={"language": "en"}
    )
    assert (await linker.press(chat, message_id, fresh)).text == (
        "⌛ Retry buttons expire after 7 days. Please retry this post from the dashboard"
    )
    await nothing_more(events)


async def test_mute_works_for_30_days_and_a_settings_menu_for_a_day(linker):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    now = linker.clock()
    message_id = await linker.notify(chat, "✅", {"🔕": linker.sign(chat, "m", "post_success")})
    for action, argument, lifetime in [
        ("m", "post_success", timedelta(days=30)),
        ("sm", "post_success", timedelta(days=1)),
        ("sl", "en", timedelta(days=1)),
    ]:
        too_old = linker.sign(
            chat, action, argument, issued_at=now - lifetime - timedelta(seconds=1)
        )
        assert (await linker.press(chat, message_id, too_old)).text == EXPIRED, action
    assert await linker.preferences(user) == DEFAULT_PREFERENCES
    fresh = linker.sign(chat, "m", "post_success", issued_at=now - timedelta(days=29))
    assert (await linker.press(chat, message_id, fresh)).text == "🔕 게시 완료 알림을 끕니다"
    # A settings menu in use is re-signed with every change, so it keeps working.
    menu = await settings_message(linker, chat)
    linker.clock.advance(hours=23)
    await linker.press(chat, menu["message_id"], buttons(menu)["22:00–07:00"])
    await eventually(lambda: linker.standin.bot_messages(chat)[-1]["edited"])
    linker.clock.advance(hours=23)
    edited = linker.standin.bot_messages(chat)[-1]
    assert (await linker.press(chat, menu["message_id"], buttons(edited)["English"])).text == (
        "✅ Settings saved"
    )
    assert (await linker.press(chat, menu["message_id"], buttons(menu)["English"])).text == (
        "⌛ This button has expired. Send /settings for a fresh menu"
    )


async def test_buttons_sent_before_buttons_were_dated_are_answered_as_expired(
    linker, tap, sessions
):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    events = await tap(EventType.POST_RETRY_REQUESTED)
    failure = await record_failure(sessions, user)
    retry = undated(linker, chat, "r", short_uuid(failure))
    mute = undated(linker, chat, "m", "post_success")
    message_id = await linker.notify(chat, "❌", {"🔄": retry, "🔕": mute})
    assert (await linker.press(chat, message_id, retry)).text == RETRY_EXPIRED
    assert (await linker.press(chat, message_id, mute)).text == EXPIRED
    # Made for another chat, the old format is as invalid as ever.
    other = undated(linker, chat + 1, "m", "post_success")
    assert (await linker.press(chat, message_id, other)).text == INVALID
    assert (await linker.preferences(user))["muted_types"] == []
    await nothing_more(events)


async def test_one_failed_post_is_retried_at_most_3_times_an_hour(linker, tap, sessions):
    events = await tap(EventType.POST_RETRY_REQUESTED)
    user, chat, failure, retry, message_id = await failure_message(linker, sessions)
    for _ in range(3):
        assert (await linker.press(chat, message_id, retry)).text == "🔄 재시도를 요청했습니다"
        await events.next()
    limited = await linker.press(chat, message_id, retry)
    assert limited.text == "⏳ 재시도 요청이 너무 많습니다. 20분 후에 다시 눌러 주세요"
    await nothing_more(events)
    # Another failed post of the same user is not held back by this one.
    other = await record_failure(sessions, user)
    other_retry = linker.sign(chat, "r", short_uuid(other))
    assert (await linker.press(chat, message_id, other_retry)).text == "🔄 재시도를 요청했습니다"
    await events.next()
    linker.clock.advance(minutes=20)
    retry = linker.sign(chat, "r", short_uuid(failure))
    assert (await linker.press(chat, message_id, retry)).text == "🔄 재시도를 요청했습니다"
    await events.next()


async def test_one_user_requests_at_most_20_retries_an_hour(linker, tap, sessions):
    user, chat = await linked_user(linker, language="en")
    events = await tap(EventType.POST_RETRY_REQUESTED)
    message_id = await linker.notify(chat, "❌", {"🔄": "x"})
    for _ in range(20):
        retry = linker.sign(chat, "r", short_uuid(await record_failure(sessions, user)))
        assert (await linker.press(chat, message_id, retry)).text == "🔄 Retry requested"
        await events.next()
    retry = linker.sign(chat, "r", short_uuid(await record_failure(sessions, user)))
    limited = await linker.press(chat, message_id, retry)
    assert (
        limited.text == "⏳ Too many retries of this post or account. Please press again in 3 min"
    )
    await nothing_more(events)


# ------------------------------------------------------------------------ redelivery
SECRET = "webhook-secret_0123456789"


async def test_a_redelivered_press_publishes_the_same_event(start_linker, tap, sessions):
    """Telegram redelivers a webhook update it got no 200 for: the same press, the same id."""
    port = free_port()
    linker = await start_linker(
        telegram_webhook_url=f"http://127.0.0.1:{port}/telegram/webhook",
        telegram_webhook_secret=SECRET,
    )
    server = uvicorn.Server(
        uvicorn.Config(linker.app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    )
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)
        events = await tap(EventType.POST_RETRY_REQUESTED)
        sent = await failure_message(linker, sessions)

        update = linker.standin.press(sent.chat, sent.message_id, sent.retry)
        pressed = await linker.standin.wait_for_callback_answer(update["callback_query"]["id"])
        first = await events.next()

        redelivered = await linker.client.post(
            "/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
        )
        assert redelivered.status_code == 200
        second = await events.next()
        assert first.event_id == second.event_id == retry_event_id(pressed.id)
        await nothing_more(events)
    finally:
        server.should_exit = True
        await serving
