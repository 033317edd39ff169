"""Real aiogram 3 against the in-process stand-in: messages, errors, chat states, faults."""

from __future__ import annotations

import html
from collections.abc import Callable

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup

from services.standin.server import StandIn

pytestmark = pytest.mark.unit

TOKEN = "123456:TEST-token-not-real"


def keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Yes", callback_data="yes")],
            [InlineKeyboardButton(text="Site", url="https://example.com/")],
        ]
    )


async def test_get_me(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot
    assert me.id == 123456
    assert me.username == "piwpiwtelegrambot"


async def test_bot_username_is_configurable(make_bot: Callable[..., Bot]) -> None:
    async with StandIn(bot_username="otherbot") as s:
        me = await make_bot(s.base_url).get_me()
    assert me.username == "otherbot"


async def test_send_message_returns_full_message(standin: StandIn, bot: Bot) -> None:
    first = await bot.send_message(42, "hello", reply_markup=keyboard())
    second = await bot.send_message(42, "again")
    other = await bot.send_message(-5, "group hello")
    assert first.text == "hello"
    assert first.chat.id == 42 and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.is_bot
    assert first.from_user.username == "piwpiwtelegrambot"
    assert first.reply_markup is not None
    assert first.reply_markup.model_dump() == keyboard().model_dump()
    assert first.date.timestamp() > 0
    assert (first.message_id, second.message_id) == (1, 2)
    assert other.message_id == 1 and other.chat.type == "group" and other.chat.title
    stored = standin.bot_messages(42)
    assert [m["text"] for m in stored] == ["hello", "again"]
    assert stored[0]["reply_markup"] == keyboard().model_dump(exclude_none=True)
    assert stored[0]["direction"] == "bot"


async def test_html_escaping_round_trip(standin: StandIn, bot: Bot) -> None:
    content = "<b>&"
    msg = await bot.send_message(42, f"<i>{html.escape(content)}</i>", parse_mode="HTML")
    assert msg.text == content
    assert msg.entities is not None and msg.entities[0].type == "italic"
    stored = standin.bot_messages(42)[0]
    assert stored["text"] == content
    assert stored["raw_text"] == "<i>&lt;b&gt;&amp;</i>"
    assert stored["parse_mode"] == "HTML"


async def test_bad_tag_is_bad_request(standin: StandIn, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(42, "<script>x</script>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(42, "1 < 2", parse_mode="HTML")
    assert standin.bot_messages(42) == []


async def test_text_length_limits(bot: Bot) -> None:
    assert (await bot.send_message(42, "x" * 4096)).text == "x" * 4096
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(42, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(42, "<b></b>", parse_mode="HTML")


async def test_edit_message_text_and_markup(standin: StandIn, bot: Bot) -> None:
    msg = await bot.send_message(42, "v1", reply_markup=keyboard())
    edited = await bot.edit_message_text("<b>v2</b>", chat_id=42, message_id=msg.message_id,
                                         parse_mode="HTML", reply_markup=keyboard())  # fmt: skip
    assert not isinstance(edited, bool)
    assert edited.text == "v2" and edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("<b>v2</b>", chat_id=42, message_id=msg.message_id,
                                    parse_mode="HTML", reply_markup=keyboard())  # fmt: skip
    await bot.edit_message_reply_markup(chat_id=42, message_id=msg.message_id)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=42, message_id=msg.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=42, message_id=999)
    stored = standin.bot_messages(42)[0]
    assert stored["text"] == "v2" and stored["edited"] and stored["reply_markup"] is None
    assert [e["text"] for e in stored["edits"]] == ["v1", "v2"]


async def test_chat_states(standin: StandIn, bot: Bot) -> None:
    standin.set_chat_state(10, "blocked")
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(10, "x")
    standin.set_chat_state(11, "deactivated")
    with pytest.raises(TelegramForbiddenError, match="user is deactivated"):
        await bot.send_message(11, "x")
    standin.set_chat_state(12, "not_found")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(12, "x")
    standin.set_chat_state(-13, "migrated", migrate_to=-1000000000013)
    with pytest.raises(TelegramMigrateToChat) as migrated:
        await bot.send_message(-13, "x")
    assert migrated.value.migrate_to_chat_id == -1000000000013
    new = await bot.send_message(-1000000000013, "x")
    assert new.chat.type == "supergroup"
    standin.set_chat_state(10, "ok")
    assert (await bot.send_message(10, "back")).text == "back"


async def test_fault_429(standin: StandIn, bot: Bot) -> None:
    standin.add_fault(error_code=429, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(42, "x")
    assert info.value.retry_after == 7
    assert standin.stats["too_many_requests"] == 1
    assert standin.bot_messages(42) == []


async def test_fault_403_400_migrate_5xx(standin: StandIn, bot: Bot) -> None:
    standin.add_fault(error_code=403, description="Forbidden: bot was blocked by the user")
    standin.add_fault(error_code=400, description="Bad Request: chat not found")
    standin.add_fault(error_code=400, description="Bad Request: group chat was upgraded to a "
                      "supergroup chat", migrate_to_chat_id=-100777)  # fmt: skip
    standin.add_fault(error_code=502)
    standin.add_fault(error_code=500, description="Internal Server Error")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(42, "x")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(42, "x")
    with pytest.raises(TelegramMigrateToChat) as migrated:
        await bot.send_message(42, "x")
    assert migrated.value.migrate_to_chat_id == -100777
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.send_message(42, "x")
    with pytest.raises(TelegramServerError):
        await bot.send_message(42, "x")
    assert (await bot.send_message(42, "ok now")).text == "ok now"
    assert standin.stats["fault_hits"] == 5
    assert [m["text"] for m in standin.bot_messages(42)] == ["ok now"]


async def test_fault_filters_and_count(standin: StandIn, bot: Bot) -> None:
    standin.add_fault(chat_id=7, error_code=502, count=2)
    standin.add_fault(method="getMe", error_code=500)
    assert (await bot.send_message(8, "other chat")).text == "other chat"
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(7, "x")
    assert (await bot.send_message(7, "third")).text == "third"
    with pytest.raises(TelegramServerError):
        await bot.get_me()
    assert standin.state.faults == []


async def test_delay_fault_times_out_but_message_is_delivered(standin: StandIn, bot: Bot) -> None:
    standin.add_fault(delay=3.0)  # deliver=True: Telegram accepted it, the answer is late
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(42, "slow one", request_timeout=1)
    assert [m["text"] for m in standin.bot_messages(42)] == ["slow one"]


async def test_delay_fault_without_delivery(standin: StandIn, bot: Bot) -> None:
    standin.add_fault(delay=3.0, deliver=False)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(42, "lost", request_timeout=1)
    assert standin.bot_messages(42) == []


async def test_close_connection_fault(standin: StandIn, bot: Bot) -> None:
    standin.add_fault(close_connection=True)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(42, "accepted, but the answer is lost")
    standin.add_fault(close_connection=True, deliver=False)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(42, "never arrived")
    assert [m["text"] for m in standin.bot_messages(42)] == ["accepted, but the answer is lost"]
    assert (await bot.send_message(42, "fine")).message_id == 2


async def test_wire_formats_and_api_errors(standin: StandIn) -> None:
    url = f"{standin.base_url}/bot{TOKEN}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/sendMessage", json={"chat_id": 1, "text": "json"}) as r:
            assert r.status == 200 and (await r.json())["result"]["text"] == "json"
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("chat_id", "1")
        form.add_field("text", "<b>multipart</b>")
        form.add_field("parse_mode", "HTML")
        form.add_field("reply_markup", '{"inline_keyboard":[[{"text":"a","callback_data":"b"}]]}')
        async with http.post(f"{url}/sendMessage", data=form) as r:
            body = await r.json()
            assert r.status == 200, body
            assert body["result"]["text"] == "multipart"
            assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "b"
        async with http.get(f"{url}/sendMessage", params={"chat_id": "1", "text": "get"}) as r:
            assert (await r.json())["result"]["text"] == "get"
        async with http.post(f"{url}/SENDMESSAGE", data={"chat_id": "1", "text": "case"}) as r:
            assert r.status == 200
        async with http.post(f"{url}/noSuchMethod") as r:
            assert r.status == 404
            assert await r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.post(f"{url}/sendMessage", json={"text": "x"}) as r:
            assert r.status == 400
            assert (await r.json())["description"] == "Bad Request: chat_id is empty"
        async with http.post(f"{url}/sendMessage", json={"chat_id": 1}) as r:
            assert r.status == 400
            assert (await r.json())["description"] == "Bad Request: message text is empty"
        async with http.post(f"{standin.base_url}/botnot-a-token/getMe") as r:
            assert r.status == 401
        async with http.post(f"{url}/close") as r:
            assert (await r.json()) == {"ok": True, "result": True}
        async with http.post(f"{url}/logOut") as r:
            assert (await r.json())["result"] is True
    assert [m["text"] for m in standin.bot_messages(1)] == ["json", "multipart", "get", "case"]
    assert standin.stats["requests"]["sendMessage"] == 6


async def test_delete_and_small_methods(standin: StandIn, bot: Bot) -> None:
    sent = await bot.send_message(42, "bye")
    assert await bot.delete_message(42, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(42, sent.message_id)
    assert standin.bot_messages(42) == []
    assert standin.sent(0)[0]["deleted"]
    assert await bot.send_chat_action(42, "typing")
    assert await bot.set_my_commands([BotCommand(command="start", description="Start")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
