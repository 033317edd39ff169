"""What a newcomer and an English-speaking user read: link-account's instructions say how to
link with the stand-in in development (Telegram's otherwise), and /help, /status and the test
message follow the chat's language (`en`), Korean staying the default."""

from __future__ import annotations

import httpx
import pytest

from services.common.telegram import make_bot
from services.linker import texts
from services.linker.app import create_app
from shared.publisher import EventPublisher
from shared.settings import TELEGRAM_API_DEFAULT
from tests.linker.helpers import bearer, linker_settings
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

TELEGRAMS = "Click the link to open Telegram and send /start to the bot to complete linking."


async def link_account(linker_or_app, user: str) -> dict:
    response = await linker_or_app.get("/api/telegram/link-account", headers=bearer(user))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_with_the_stand_in_the_instructions_say_how_to_link_there(linker):
    body = await link_account(linker.client, new_user())
    inbox = linker.standin.base_url
    assert body["instructions"].startswith("Development: this linker talks to the local Telegram")
    assert f"{inbox}/#chat=42" in body["instructions"]
    assert f"send /start {body['token']} there" in body["instructions"]


async def test_against_telegram_the_instructions_are_the_specs(engine, database_url, rabbitmq_url):
    settings = linker_settings(database_url, rabbitmq_url, TELEGRAM_API_DEFAULT)
    app = create_app(settings, engine, EventPublisher(rabbitmq_url), make_bot(settings))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://linker") as client:
        body = await link_account(client, new_user())
    assert body["instructions"] == TELEGRAMS


async def english(linker, user: str) -> None:
    response = await linker.client.put(
        "/api/telegram/preferences", headers=bearer(user), json={"language": "en"}
    )
    assert response.status_code == 200, response.text


async def test_help_status_and_the_test_message_in_english(linker):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    assert await linker.say(chat, "/help") == texts.HELP  # Korean by default
    assert await linker.say(chat, "/status") == texts.STATUS_LINKED
    await english(linker, user)

    help_ = await linker.say(chat, "/help")
    assert help_.startswith("🤖 SNS automation notification bot")
    for command in ("/start", "/status", "/settings", "/mute", "/unmute", "/stop", "/help"):
        assert f"{command} - " in help_
    assert await linker.say(chat, "/status") == "✅ Linked: this chat receives SNS notifications."

    sent = await linker.client.post("/api/telegram/send-test-message", headers=bearer(user))
    assert sent.status_code == 200, sent.text
    assert linker.bot_texts(chat)[-1] == "🧪 Test message\n\nThe Telegram integration works! ✅"
