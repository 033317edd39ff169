"""Whatever Telegram sends, the linker stays up: property tests feeding the webhook updates in the
shape of Telegram's Update with arbitrary contents, and pressing buttons with arbitrary data.
Never a 5xx, never a handler that failed, every callback query answered exactly once."""

from __future__ import annotations

import json
import logging
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.linker import texts
from services.linker.menu import SETTINGS_ACTIONS
from services.linker.preferences import MUTABLE_TYPES
from tests.support.ids import new_chat_id, new_user
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SECRET = "webhook-secret_0123456789"
HOOK = "/telegram/webhook"
ANSWERS = {
    texts.answer(key, language, event_type)
    for language in ("ko", "en")
    for key in texts._ANSWERS[language]
    for event_type in (*MUTABLE_TYPES, None)
    if (event_type is None) != ("muted" in key)
}

ids = st.one_of(
    st.integers(min_value=-(2**31), max_value=2**31),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**63, -(2**63), 2**53 + 1]),
)
odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Cs"]), max_size=20),
    st.just("x" * 5000),
)
COMMANDS = ["/start", "/start ", "/stop", "/mute", "/unmute", "/settings", "/status", "/help"]
command = st.tuples(
    st.sampled_from(COMMANDS),
    st.sampled_from(["", "@piwpiwtelegrambot", "@otherbot", "@"]),
    st.one_of(st.just(""), odd_text.map(lambda t: " " + t)),
).map("".join)
chat_types = st.one_of(st.sampled_from(["private", "group", "supergroup", "channel"]), odd_text)
chat = st.fixed_dictionaries(
    {"id": ids, "type": chat_types},
    optional={"title": odd_text, "first_name": odd_text, "username": odd_text},
)
user = st.fixed_dictionaries(
    {"id": ids, "is_bot": st.booleans(), "first_name": odd_text},
    optional={"username": odd_text, "language_code": odd_text},
)
entities = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["bot_command", "bold", "url", "mention"]), "offset": ids},
        optional={"length": ids},
    ),
    max_size=3,
)
message = st.fixed_dictionaries(
    {"message_id": ids, "date": ids, "chat": chat},
    optional={
        "text": st.one_of(command, odd_text),
        "from": user,
        "sender_chat": chat,
        "entities": entities,
        "migrate_to_chat_id": ids,
        "migrate_from_chat_id": ids,
    },
)
callback_data = st.one_of(
    odd_text,
    st.text(alphabet=string.ascii_letters + ":0-_", max_size=70),
    st.sampled_from(["r", "m", "sm", "su", "sl", "sq"]).map(lambda a: f"{a}:x:1:AAAAAAAAAAAAAAAA"),
)
callback_query = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=30), "from": user, "chat_instance": odd_text},
    optional={"data": callback_data, "message": message},
)
member = st.fixed_dictionaries(
    {"status": st.sampled_from(["member", "left", "kicked", "creator", "boss"]), "user": user}
)
chat_member_updated = st.fixed_dictionaries(
    {"chat": chat, "from": user, "date": ids, "old_chat_member": member, "new_chat_member": member}
)
json_values = st.recursive(
    st.none() | st.booleans() | ids | odd_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=8,
)
event = st.one_of(
    st.tuples(st.sampled_from(["message", "edited_message"]), message),
    st.tuples(st.just("callback_query"), callback_query),
    st.tuples(st.just("my_chat_member"), chat_member_updated),
    st.tuples(st.sampled_from(["message", "callback_query", "poll", "unknown_kind"]), json_values),
)
updates = st.builds(
    lambda update_id, kind_and_body: {"update_id": update_id, kind_and_body[0]: kind_and_body[1]},
    ids,
    event,
)

PRESS = {"id": "1", "from": {"id": 1, "is_bot": False, "first_name": "U"}, "chat_instance": "1"}
CHAT = {"id": 5, "type": "private"}


@pytest.fixture
async def hooked(start_linker):
    return await start_linker(
        telegram_webhook_url="https://linker.example/telegram/webhook",
        telegram_webhook_secret=SECRET,
    )


class Failures(logging.Handler):
    """Records the linker's reports of a bot update that failed in a handler."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())


@pytest.fixture
def failures():
    handler = Failures()
    loggers = [logging.getLogger(name) for name in ("services.linker", "aiogram.event")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@given(update=updates)
@example(update={"update_id": 1, "callback_query": {**PRESS, "data": "\ud800"}})
@example(update={"update_id": 2, "callback_query": {**PRESS, "message": "not a message"}})
@example(update={"update_id": 3, "message": {"message_id": 1, "date": 0, "chat": {"id": 2**70}}})
@example(
    update={
        "update_id": 4,
        "message": {"message_id": 1, "date": 0, "chat": CHAT, "text": "/start \x00"},
    }
)
@example(update={"update_id": 5, "callback_query": {**PRESS, "data": "r:x:zzzzzzzz:A"}})
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
async def test_no_update_stops_the_webhook_and_every_press_is_answered_once(
    hooked, failures, update
):
    failures.seen.clear()
    answers = hooked.standin.stats["requests"].get("answerCallbackQuery", 0)
    body = json.dumps(update)  # ensure_ascii: lone surrogates travel as \ud800, as JSON allows
    response = await hooked.client.post(
        HOOK,
        content=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert failures.seen == []
    query = update.get("callback_query")
    pressed = isinstance(query, dict) and isinstance(query.get("id"), str)
    answered = hooked.standin.stats["requests"].get("answerCallbackQuery", 0) - answers
    assert answered == (1 if pressed else 0)


async def test_bodies_that_are_no_update_are_400_and_never_5xx(hooked):
    deep = "[" * 100_000 + "]" * 100_000
    for body in (deep, "{", '"text"', "[]", '{"update_id": "1"}', '{"update_id": true}'):
        response = await hooked.client.post(
            HOOK,
            content=body,
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, body[:20]
        assert response.json()["status"] == "error"


@st.composite
def any_press_data(draw, chat_id, sign):
    """Anything as callback_data: text of any length, or signed data with any argument, whole
    or with a few characters changed."""
    kind = draw(st.sampled_from(["text", "signed", "mangled"]))
    if kind == "text":
        return draw(st.text(min_size=1, max_size=100))
    action = draw(st.sampled_from(["r", "m", *SETTINGS_ACTIONS, "zz"]))
    argument = draw(
        st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=24)
        | st.sampled_from(
            ["post_success", "en", "ko", "off", "on", "2200-0700", "0000-0000", "general"]
        )
        | st.sampled_from(["post_failure.silent", "daily_summary.muted", "hold", "silent"])
    )
    data = sign(chat_id, action, argument)
    if kind == "mangled":
        position = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data = data[:position] + draw(st.text(min_size=1, max_size=3)) + data[position + 1 :]
    return data


@pytest.fixture
async def linked(linker):
    """A linked private chat with a notification to press buttons on."""
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    message_id = await linker.notify(chat, "❌", {"🔄": linker.sign(chat, "r", "x")})
    return linker, chat, message_id


async def answered_as_one_of_ours(linker, chat: int, message_id: int, data: str) -> None:
    answer = await linker.press(chat, message_id, data)
    assert answer.text is not None
    assert answer.text in ANSWERS or answer.text.startswith("⏳"), answer.text


@given(draw=st.data())
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
async def test_any_button_data_pressed_in_a_linked_chat_is_answered(linked, draw):
    linker, chat, message_id = linked
    data = draw.draw(any_press_data(chat, linker.sign), label="callback_data")
    await answered_as_one_of_ours(linker, chat, message_id, data)


async def test_button_data_of_every_length_and_kind_is_answered(linked):
    linker, chat, message_id = linked
    # Found or feared: longer than Telegram allows, only controls, the separator alone.
    for data in ("r:" + "x" * 80, "\u202e" * 64, ":", ":::", "r::0:", "\x00", "é" * 40):
        await answered_as_one_of_ours(linker, chat, message_id, data)


async def test_polling_answers_a_press_it_cannot_read_and_goes_on(linker):
    """A getUpdates answer with a press aiogram cannot read (another server's shape) is still
    answered, and polling carries on instead of failing on the same answer forever."""
    chat = new_chat_id()
    answers = linker.standin.stats["requests"].get("answerCallbackQuery", 0)
    unreadable = {
        "update_id": 0,  # confirms nothing real
        "callback_query": {"id": "unreadable-1", "from": {"id": "?"}, "message": "?", "data": 1},
    }
    linker.standin.add_fault(method="getUpdates", result=[unreadable], deliver=False)
    assert await linker.say(new_chat_id(), "/help") == texts.HELP  # ends the poll in flight

    await eventually(
        lambda: linker.standin.stats["requests"].get("answerCallbackQuery", 0) == answers + 1,
        what="the unreadable press answered",
    )
    assert await linker.say(chat, "/help") == texts.HELP
