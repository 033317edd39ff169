"""The whole linking flow as a user does it, against real PostgreSQL, RabbitMQ and aiogram."""

import re

import pytest

from services.linker import texts
from shared.contract import EventType
from tests.linker.helpers import BOT_USERNAME, bearer
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

NOT_LINKED = {
    "telegram_enabled": False,
    "message": "Telegram account not linked. Use /link-account endpoint to connect.",
}


async def test_link_status_test_message_unlink(linker, tap):
    user, chat = new_user(), new_chat_id()
    events = await tap(EventType.TELEGRAM_LINKED, EventType.TELEGRAM_UNLINKED)
    client = linker.client

    assert await linker.status(user) == NOT_LINKED

    response = await client.get("/api/telegram/link-account", headers=bearer(user))
    assert response.status_code == 200
    body = response.json()
    token = body["token"]
    assert body == {
        "status": "success",
        "linking_url": f"https://t.me/{BOT_USERNAME}?start={token}",
        "token": token,
        # This test linker talks to the stand-in (development): the instructions say how to
        # link there (tests/linker/test_instructions_and_languages.py has Telegram's).
        "instructions": (
            "Development: this linker talks to the local Telegram stand-in, not Telegram. Open "
            f"its inbox at {linker.standin.base_url}/#chat=42 (or type a chat id in the inbox's "
            f"chat id box and press Open) and send /start {token} there to complete linking."
        ),
        "bot_username": BOT_USERNAME,
    }
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,64}", token)
    assert response.headers["cache-control"] == "no-store"

    reply = await linker.say(chat, f"/start {token}")
    assert reply.startswith("✅ Telegram 계정이 연결되었습니다!")

    status = await linker.status(user)
    assert status["telegram_enabled"] is True
    assert status["telegram_chat_id"] == str(chat)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", status["linked_at"])
    assert set(status) == {"telegram_enabled", "telegram_chat_id", "linked_at"}

    linked = await events.next()
    assert (linked.type, linked.user_id, linked.data) == (
        EventType.TELEGRAM_LINKED,
        user,
        {"chat_type": "private"},
    )

    response = await client.post("/api/telegram/send-test-message", headers=bearer(user), json={})
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "success", "message": "Test message sent successfully"}
    last = linker.bot_texts(chat)[-1]
    assert last == "🧪 테스트 메시지\n\nTelegram 연동이 정상적으로 작동합니다! ✅"
    assert last == texts.TEST_MESSAGE

    response = await client.post("/api/telegram/unlink-account", headers=bearer(user), json={})
    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "message": "Telegram account unlinked successfully",
    }
    assert await linker.status(user) == NOT_LINKED
    unlinked = await events.next()
    assert (unlinked.type, unlinked.user_id) == (EventType.TELEGRAM_UNLINKED, user)

    # Idempotent: unlinking again succeeds and announces nothing.
    response = await client.post("/api/telegram/unlink-account", headers=bearer(user))
    assert response.status_code == 200
    response = await client.post("/api/telegram/send-test-message", headers=bearer(user))
    assert response.status_code == 409
    assert response.json()["code"] == "not_linked"
