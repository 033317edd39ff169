"""The bot's commands in a chat: /start, /status, /stop, /help, and chat changes."""

import pytest

from services.linker import texts
from shared.contract import EventType
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration


async def test_start_without_a_token_explains_how_to_link(linker):
    reply = await linker.say(new_chat_id(), "/start")
    assert reply == texts.welcome(900)
    assert "15분" in reply


async def test_help_lists_the_commands(linker):
    reply = await linker.say(new_chat_id(), "/help")
    for command in ("/start", "/status", "/stop", "/help"):
        assert command in reply


async def test_other_text_in_a_private_chat_gets_help(linker):
    assert await linker.say(new_chat_id(), "hello?") == texts.HELP


async def test_status_in_the_chat(linker):
    user, chat = new_user(), new_chat_id()
    assert await linker.say(chat, "/status") == texts.STATUS_NOT_LINKED
    await linker.link(user, chat)
    assert await linker.say(chat, "/status") == texts.STATUS_LINKED


async def test_stop_unlinks_from_telegram(linker, tap):
    user, chat = new_user(), new_chat_id()
    events = await tap(EventType.TELEGRAM_UNLINKED)
    await linker.link(user, chat)

    assert await linker.say(chat, "/stop") == texts.STOPPED
    assert (await linker.status(user))["telegram_enabled"] is False
    event = await events.next()
    assert (event.type, event.user_id, event.data["chat_type"]) == (
        EventType.TELEGRAM_UNLINKED,
        user,
        "private",
    )
    assert await linker.say(chat, "/stop") == texts.STOP_NOT_LINKED


async def test_stop_in_a_group_unlinks_every_account_linked_there(linker):
    first, second, group = new_user(), new_user(), -new_chat_id()
    await linker.link(first, group, chat_type="group")
    await linker.link(second, group, chat_type="group")
    assert await linker.say(group, "/stop", chat_type="group") == texts.STOPPED
    assert (await linker.status(first))["telegram_enabled"] is False
    assert (await linker.status(second))["telegram_enabled"] is False


async def test_start_again_in_a_linked_chat_says_so(linker):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    assert await linker.say(chat, "/start") == texts.ALREADY_LINKED
