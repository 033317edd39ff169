"""Forum topics on the linker's side, through the stand-in with real aiogram: `/start@bot TOKEN`
sent inside a topic links that topic (and is answered there); the preferences API sets or clears
it; the notifier's `telegram.topic_closed` clears it. Any `message_thread_id` an update or a body
carries gets an answer, never a 5xx or a crash."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.linker import texts
from services.linker.preferences import MAX_THREAD_ID, Preferences
from shared.contract import EventType
from tests.linker.helpers import bearer
from tests.linker.helpers import publish_internal as publish
from tests.linker.test_buttons import buttons
from tests.support.ids import new_chat_id, new_user
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PREFERENCES = "/api/telegram/preferences"
BOT = "@piwpiwtelegrambot"


def forum() -> int:
    """A new supergroup's chat id."""
    return -(10**12) - new_chat_id()


async def link_in_topic(linker, user: str, chat: int, thread: int | None) -> str:
    """`/start@bot TOKEN` sent by `user`'s admin in `chat`, inside topic `thread` (None: General);
    returns the bot's reply."""
    response = await linker.client.get("/api/telegram/link-account", headers=bearer(user))
    token = response.json()["token"]
    return await linker.say(
        chat,
        f"/start{BOT} {token}",
        chat_type="supergroup",
        title="Team forum",
        message_thread_id=thread,
    )


async def test_linking_inside_a_topic_links_that_topic_and_answers_there(linker):
    user, chat = new_user(), forum()
    assert await link_in_topic(linker, user, chat, 7) == texts.LINKED
    assert (await linker.preferences(user))["message_thread_id"] == 7
    reply = linker.standin.messages(chat, "bot")[-1]
    assert reply["message_thread_id"] == 7  # the bot answers in the topic it was asked in
    # Linking again from General moves the notifications to General.
    assert await link_in_topic(linker, user, chat, None) == texts.LINKED
    assert (await linker.preferences(user))["message_thread_id"] is None


async def test_the_preferences_api_sets_and_clears_the_topic(linker):
    user, chat = new_user(), forum()
    await link_in_topic(linker, user, chat, None)
    headers = bearer(user)
    response = await linker.client.put(PREFERENCES, headers=headers, json={"message_thread_id": 9})
    assert response.status_code == 200, response.text
    assert response.json()["message_thread_id"] == 9
    # Other changes keep it; null clears it.
    response = await linker.client.put(PREFERENCES, headers=headers, json={"language": "en"})
    assert response.json()["message_thread_id"] == 9
    response = await linker.client.put(
        PREFERENCES, headers=headers, json={"message_thread_id": None}
    )
    assert response.status_code == 200, response.text
    assert (await linker.preferences(user))["message_thread_id"] is None


async def test_topic_closed_clears_only_the_topic_it_names(linker):
    stays, cleared = new_user(), new_user()
    await link_in_topic(linker, stays, forum(), 7)
    await link_in_topic(linker, cleared, forum(), 7)
    closed = {"reason": "Bad Request: TOPIC_CLOSED", "error_code": 400}
    # Another topic than the link's (it was moved since): nothing changes.
    await publish(
        linker.rabbitmq_url,
        EventType.TELEGRAM_TOPIC_CLOSED,
        stays,
        {"message_thread_id": 8, **closed},
    )
    await publish(
        linker.rabbitmq_url,
        EventType.TELEGRAM_TOPIC_CLOSED,
        cleared,
        {"message_thread_id": 7, **closed},
    )

    async def gone() -> bool:
        return (await linker.preferences(cleared))["message_thread_id"] is None

    await eventually(gone)  # events are handled in order: the first one was seen
    assert (await linker.preferences(stays))["message_thread_id"] == 7
    assert (await linker.status(cleared))["telegram_enabled"] is True


@pytest.mark.parametrize(
    ("language", "line", "general", "saved"),
    [
        ("ko", "📌 토픽: #123", "📌 일반(General)으로 옮기기", "✅ 설정을 저장했습니다"),
        ("en", "📌 Topic: #123", "📌 Move to General", "✅ Settings saved"),
    ],
)
async def test_settings_show_the_topic_and_move_notifications_back_to_general(
    linker, language, line, general, saved
):
    """/settings in a topic-linked forum names the topic and offers General; pressing it clears
    the link's topic (notifications go to the chat) and the menu loses both."""
    user, chat = new_user(), forum()
    await link_in_topic(linker, user, chat, 123)
    response = await linker.client.put(
        PREFERENCES, headers=bearer(user), json={"language": language}
    )
    assert response.status_code == 200, response.text
    in_topic = {"chat_type": "supergroup", "title": "Team forum", "message_thread_id": 123}
    assert line in (await linker.say(chat, "/settings", **in_topic)).splitlines()
    menu = linker.standin.messages(chat, "bot")[-1]
    assert menu["message_thread_id"] == 123  # shown in the topic it was asked in
    keyboard = buttons(menu)

    pressed = await linker.press(chat, menu["message_id"], keyboard[general])
    assert pressed.text == saved
    assert (await linker.preferences(user))["message_thread_id"] is None

    def shown():
        return linker.standin.messages(chat, "bot")[-1]

    await eventually(lambda: shown()["edited"], what="the menu edited")
    assert "📌" not in shown()["text"]
    assert general not in buttons(shown())
    assert shown()["text"] == texts.settings_text(Preferences(language=language))
    # An old menu's press moves to General again: nothing changes, the press is answered.
    assert (await linker.press(chat, menu["message_id"], keyboard[general])).text == saved
    assert (await linker.preferences(user))["message_thread_id"] is None


async def test_settings_without_a_topic_show_neither_line_nor_button(linker):
    user, chat = new_user(), forum()
    await link_in_topic(linker, user, chat, None)
    text = await linker.say(chat, "/settings", chat_type="supergroup", title="Team forum")
    assert text == texts.settings_text(Preferences())
    keyboard = buttons(linker.standin.messages(chat, "bot")[-1])
    assert texts.general_button("ko") not in keyboard


THREADS = st.one_of(
    st.none(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, MAX_THREAD_ID, MAX_THREAD_ID + 1, -(2**63)]),
)


@given(thread=THREADS)
@example(thread=2**64)
@example(thread=None)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
async def test_any_thread_id_in_a_start_update_links_a_topic_or_the_chat(linker, thread):
    """Whatever `message_thread_id` a topic message carries (negative, 0, past BIGINT, none):
    the bot answers, and the link holds it only if a topic can have it."""
    user, chat = new_user(), forum()
    assert await link_in_topic(linker, user, chat, thread) == texts.LINKED
    stored = (await linker.preferences(user))["message_thread_id"]
    valid = thread is not None and 1 <= thread <= MAX_THREAD_ID
    assert stored == (thread if valid else None)


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=2),
)


@given(value=JSON_VALUES)
@example(value=MAX_THREAD_ID + 1)
@example(value=0)
@example(value=True)
@example(value=3.0)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
async def test_any_thread_id_in_the_preferences_api_is_taken_or_refused(linker, value):
    """A JSON value for `message_thread_id`: a 200 storing it (an integer 1..2^63-1, or null to
    clear it), else a 422 naming the field; never a 5xx."""
    user = new_user()
    await linker.link(user, forum())
    response = await linker.client.put(
        PREFERENCES, headers=bearer(user), json={"message_thread_id": value}
    )
    integral = isinstance(value, int | float) and not isinstance(value, bool)
    valid = value is None or (integral and value == int(value) and 1 <= value <= MAX_THREAD_ID)
    if valid:
        assert response.status_code == 200, response.text
        assert response.json()["message_thread_id"] == (None if value is None else int(value))
    else:
        assert response.status_code == 422, response.text
        fields = {p["field"] for p in response.json()["details"]}
        assert fields == {"body.message_thread_id"}, response.text
