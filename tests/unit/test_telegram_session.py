"""make_bot's session is liberal in what it reads: real aiogram over HTTP against the stand-in,
whose faults answer as a proxy, an older or a self-hosted Bot API server might."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from services.common.telegram import (
    MAX_DESCRIPTION,
    LenientSession,
    UnexpectedResult,
    make_bot,
    read_update,
    result_field,
)
from services.notifier.telegram import AiogramSender, Failure, SendError
from services.standin.server import StandIn
from shared.settings import BaseServiceSettings

pytestmark = pytest.mark.unit

TOKEN = "123456:SECRET-token-for-session-tests"
SECRET = TOKEN.partition(":")[2]
GROUP = -777


@pytest.fixture
async def bot(standin: StandIn) -> AsyncIterator[Bot]:
    settings = BaseServiceSettings(
        app_env="development", telegram_api_base=standin.base_url, telegram_bot_token=TOKEN
    )
    made = make_bot(settings)
    yield made
    await made.session.close()


@pytest.mark.parametrize("result", [True, {}, [], "sent", 1.5])
async def test_an_action_answered_ok_with_a_result_of_another_shape_succeeds(
    standin: StandIn, bot: Bot, result
) -> None:
    standin.add_fault(method="sendMessage", result=result)
    assert await bot.send_message(42, "hello") is None  # nobody reads it: carry on
    assert [m["text"] for m in standin.bot_messages(42)] == ["hello"]
    standin.add_fault(method="setMyCommands", result=result)
    assert await bot.set_my_commands([]) is True


async def test_a_query_answered_with_a_result_of_another_shape_says_so_and_keeps_it(
    standin: StandIn, bot: Bot
) -> None:
    standin.add_fault(method="getChatMember", result=True)
    with pytest.raises(UnexpectedResult) as refused:
        await bot.get_chat_member(GROUP, 5)
    assert isinstance(refused.value, TelegramAPIError)
    assert "getChatMember" in refused.value.message and refused.value.result is True
    assert result_field(refused.value.result, "status") is None

    # An older server: an administrator without a field added since. The status still reads.
    older = {"status": "administrator", "user": {"id": 5, "is_bot": False, "first_name": "A"}}
    standin.add_fault(method="getChatMember", result=older)
    with pytest.raises(UnexpectedResult) as refused:
        await bot.get_chat_member(GROUP, 5)
    assert result_field(refused.value.result, "status") == "administrator"


async def test_get_me_of_another_shape_is_the_bot_the_token_names(
    standin: StandIn, bot: Bot
) -> None:
    standin.add_fault(method="getMe", result={})
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, None)
    standin.add_fault(method="getMe", result={"username": "otherbot", "is_bot": "maybe"})
    assert (await bot.get_me()).username == "otherbot"


async def test_get_me_without_a_username_takes_the_configured_one(standin: StandIn) -> None:
    # aiogram keeps the first getMe answer to tell `/stop@ourbot` from `/stop@otherbot`.
    settings = BaseServiceSettings(
        app_env="development",
        telegram_api_base=standin.base_url,
        telegram_bot_token=TOKEN,
        telegram_bot_username="@ourbot",
    )
    bot = make_bot(settings)
    try:
        standin.add_fault(method="getMe", result=True)
        assert (await bot.me()).username == "ourbot"
    finally:
        await bot.session.close()


async def test_one_update_aiogram_cannot_read_never_stalls_get_updates(
    standin: StandIn, bot: Bot
) -> None:
    chat = {"id": 1, "type": "private"}
    good = {"update_id": 10, "message": {"message_id": 1, "date": 0, "chat": chat}}
    press = {
        "update_id": 11,
        "callback_query": {"id": "q1", "from": {"id": 5}, "data": "r:x", "message": "?"},
    }
    other = {"update_id": 12, "message": {"text": 5}}
    standin.add_fault(method="getUpdates", result=[good, press, other, "junk"], deliver=False)
    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [10, 11, 12]
    assert updates[0].message is not None and updates[0].message.chat.id == 1
    reduced = updates[1].callback_query
    assert reduced is not None and (reduced.id, reduced.data, reduced.message) == (
        "q1",
        "r:x",
        None,
    )
    assert updates[2].message is None

    standin.add_fault(method="getUpdates", result={"not": "a list"}, deliver=False)
    with pytest.raises(UnexpectedResult):
        await bot.get_updates()


@pytest.mark.parametrize(
    ("status", "expected"),
    [(502, TelegramServerError), (504, TelegramServerError), (400, TelegramBadRequest)],
)
async def test_an_error_page_that_is_not_json_is_the_error_its_status_means(
    standin: StandIn, bot: Bot, status, expected
) -> None:
    standin.add_fault(method="sendMessage", error_code=status, raw_body="<html>oops</html>")
    with pytest.raises(expected) as failed:
        await bot.send_message(42, "hello")
    assert f"HTTP {status}" in failed.value.message


async def test_a_200_that_is_not_a_bot_api_answer_is_a_server_error(
    standin: StandIn, bot: Bot
) -> None:
    standin.add_fault(method="sendMessage", error_code=200, raw_body="captive portal")
    with pytest.raises(TelegramServerError):
        await bot.send_message(42, "hello")


async def test_an_unreadable_error_keeps_its_retry_after(standin: StandIn, bot: Bot) -> None:
    # `description` of another type makes the answer unreadable for aiogram.
    body = '{"ok": false, "description": 5, "parameters": {"retry_after": 3}}'
    standin.add_fault(method="sendMessage", error_code=429, raw_body=body)
    with pytest.raises(TelegramRetryAfter) as failed:
        await bot.send_message(42, "hello")
    assert failed.value.retry_after == 3


async def test_no_error_message_carries_the_token_or_control_characters(
    standin: StandIn, bot: Bot
) -> None:
    standin.add_fault(method="sendMessage", error_code=400, description=f"bad {TOKEN}\x00\n")
    with pytest.raises(TelegramBadRequest) as failed:
        await bot.send_message(42, "hello")
    assert SECRET not in str(failed.value) and "<bot token>" in failed.value.message
    assert failed.value.message.isprintable()

    standin.add_fault(method="sendMessage", error_code=400, description="x" * 5000)
    with pytest.raises(TelegramBadRequest) as failed:
        await bot.send_message(42, "hello")
    assert len(failed.value.message) == MAX_DESCRIPTION


async def test_an_invalid_server_url_never_puts_the_token_in_the_error() -> None:
    # aiohttp's error names the whole URL, and the URL holds the token.
    session = LenientSession(api=TelegramAPIServer.from_base("http://127.0.0.1:99999"))
    bot = Bot(TOKEN, session=session)
    try:
        with pytest.raises(TelegramNetworkError) as failed:
            await bot.get_me()
    finally:
        await session.close()
    shown = "".join(traceback.format_exception(failed.value))
    assert SECRET not in shown and "<bot token>" in shown


def test_read_update_takes_what_telegram_sends_and_reduces_what_it_cannot_read() -> None:
    bot = Bot(TOKEN)
    assert read_update({"update_id": 1}, bot).update_id == 1
    for not_an_update in (None, [], "x", {"update_id": "1"}, {"update_id": True}, {}):
        assert read_update(not_an_update, bot) is None
    reduced = read_update({"update_id": 2, "callback_query": {"id": "q", "from": 7}}, bot)
    assert reduced.callback_query is not None and reduced.callback_query.from_user.id == 0
    assert read_update({"update_id": 3, "callback_query": {"id": 9}}, bot).callback_query is None


async def test_the_notifier_retries_a_proxys_error_page_instead_of_dead_lettering(
    standin: StandIn, bot: Bot
) -> None:
    # Before, aiogram's ClientDecodeError was classified as a message Telegram rejected.
    sender = AiogramSender(bot)
    standin.add_fault(method="sendMessage", error_code=502, raw_body="<html>Bad Gateway</html>")
    with pytest.raises(SendError) as failed:
        await sender.send_text(42, "hello")
    assert failed.value.failure is Failure.TRANSIENT
    assert await sender.send_text(42, "hello") > 0
