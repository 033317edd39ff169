"""Updates from the simulated user: long polling, aiogram Dispatcher, webhook, button presses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramConflictError
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from services.standin.server import StandIn

pytestmark = pytest.mark.unit


async def test_long_poll_returns_as_soon_as_an_update_arrives(standin: StandIn, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await standin.wait_for(lambda: standin.state.polls_waiting >= 1)
    sent_at = time.monotonic()
    update = standin.user_sends(42, "hello bot")
    updates = await asyncio.wait_for(poll, 10)
    elapsed = time.monotonic() - sent_at
    assert elapsed < 2.5, f"long poll took {elapsed:.2f} s after the update"
    assert [u.update_id for u in updates] == [update["update_id"]]
    message = updates[0].message
    assert message is not None and message.text == "hello bot"
    assert message.chat.id == 42 and message.from_user is not None
    assert message.from_user.id == 42 and not message.from_user.is_bot


async def test_get_updates_offset_and_limit(standin: StandIn, bot: Bot) -> None:
    ids = [standin.user_sends(42, f"m{i}")["update_id"] for i in range(3)]
    assert [u.update_id for u in await bot.get_updates()] == ids  # not confirmed yet
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates(offset=ids[1])] == ids[1:]
    assert [u.update_id for u in await bot.get_updates()] == ids[1:]  # ids[0] confirmed
    assert await bot.get_updates(offset=ids[2] + 1) == []
    assert standin.stats["updates_pending"] == 0
    started = time.monotonic()
    assert await bot.get_updates(offset=ids[2] + 1, timeout=1) == []
    assert time.monotonic() - started >= 0.9  # really waited for the timeout


async def test_dispatcher_polling_start_command(standin: StandIn, bot: Bot) -> None:
    dp = Dispatcher()
    payloads: list[str | None] = []

    @dp.message(CommandStart(deep_link=True))
    async def on_start(message: Message, command: CommandObject) -> None:
        payloads.append(command.args)
        await message.answer(f"linked <b>{command.args}</b>", parse_mode="HTML")

    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=2, close_bot_session=False)
    )
    try:
        update = standin.user_sends(42, "/start abc")
        assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
        replies = await standin.wait_for_messages(42, 1, timeout=20)
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 20)
    assert payloads == ["abc"]
    assert replies[0]["text"] == "linked abc"
    assert [m["direction"] for m in standin.messages(42)] == ["user", "bot"]


async def test_allowed_updates_filter(standin: StandIn, bot: Bot) -> None:
    sent = await bot.send_message(42, "pick one")
    standin.user_sends(42, "plain text")
    pressed = standin.press(42, sent.message_id, "d")
    updates = await bot.get_updates(allowed_updates=["callback_query"])
    assert [u.update_id for u in updates] == [pressed["update_id"]]


async def test_second_poller_terminates_the_first(standin: StandIn, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=10))
    await standin.wait_for(lambda: standin.state.polls_waiting >= 1)
    second = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await asyncio.wait_for(first, 10)
    assert await asyncio.wait_for(second, 10) == []


async def test_callback_press_and_answer(standin: StandIn, bot: Bot) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Confirm", callback_data="confirm:1")]]
    )
    sent = await bot.send_message(42, "Confirm?", reply_markup=markup)
    pressed = standin.press(42, sent.message_id, "confirm:1")
    updates = await bot.get_updates(timeout=5)
    query = updates[-1].callback_query
    assert query is not None and query.data == "confirm:1"
    assert query.id == pressed["callback_query"]["id"]
    assert isinstance(query.message, Message) and query.message.message_id == sent.message_id
    assert not standin.callback(query.id).answered
    assert await bot.answer_callback_query(query.id, text="Confirmed")
    record = standin.callback(query.id)
    assert record.answered and record.text == "Confirmed"
    assert standin.stats["callbacks_answered"] == 1


async def test_dispatcher_answers_callbacks(standin: StandIn, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.callback_query()
    async def on_press(query: CallbackQuery) -> None:
        await query.answer(f"got {query.data}")

    sent = await bot.send_message(42, "pick")
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=2, close_bot_session=False)
    )
    try:
        query_id = standin.press(42, sent.message_id, "b1")["callback_query"]["id"]
        record = await standin.wait_for_callback_answer(query_id, timeout=20)
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 20)
    assert record.text == "got b1"


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` served on a free local port while the block runs; the URL of its `/hook`."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


def _receiver() -> tuple[web.Application, list[tuple[dict[str, str], Any]]]:
    """A webhook receiver that keeps each request's headers and body, and accepts it."""
    received: list[tuple[dict[str, str], Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.json()))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app, received


async def test_webhook_push_with_secret(standin: StandIn, bot: Bot) -> None:
    app, received = _receiver()
    async with serving(app) as url:
        assert await bot.set_webhook(url, secret_token="s3cret_Token-1")
        info = await bot.get_webhook_info()
        assert info.url == url
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        update = standin.user_sends(42, "via webhook")
        await standin.wait_for(lambda: len(received) >= 1, timeout=10)
        headers, body = received[0]
        assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret_Token-1"
        assert body == update
        await standin.wait_for(lambda: standin.stats["updates_pending"] == 0, timeout=10)
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
        assert await bot.get_updates() == []


async def test_webhook_retries_until_receiver_accepts(standin: StandIn, bot: Bot) -> None:
    attempts: list[int] = []

    async def flaky(request: web.Request) -> web.Response:
        attempts.append(1)
        return web.json_response({}, status=500 if len(attempts) < 3 else 200)

    app = web.Application()
    app.router.add_post("/hook", flaky)
    async with serving(app) as url:
        await bot.set_webhook(url)
        standin.user_sends(42, "retry me")
        await standin.wait_for(lambda: standin.stats["webhook_delivered"] == 1, timeout=15)
        assert len(attempts) == 3
        assert standin.stats["webhook_failed_attempts"] == 2
        info = await bot.get_webhook_info()
        assert info.last_error_message and "500" in info.last_error_message


async def test_webhook_reply_in_response(standin: StandIn, bot: Bot) -> None:
    """aiogram's SimpleRequestHandler may answer the webhook POST with a method call."""
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> Any:
        return message.answer(f"echo: {message.text}")

    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False).register(app, path="/hook")
    async with serving(app) as url:
        await bot.set_webhook(url)
        standin.user_sends(42, "ping")
        replies = await standin.wait_for_messages(42, 1, timeout=15)
        assert replies[0]["text"] == "echo: ping"
