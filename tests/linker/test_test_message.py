"""POST /send-test-message: success only when Telegram accepted it; 409, 429 and 502 otherwise."""

import pytest

from services.linker import texts
from tests.linker.helpers import bearer
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

SEND = "/api/telegram/send-test-message"


async def test_not_linked_is_409(linker):
    response = await linker.client.post(SEND, headers=bearer(new_user()), json={})
    assert response.status_code == 409
    assert response.json() == {
        "status": "error",
        "code": "not_linked",
        "message": "Telegram account not linked. Use /link-account endpoint to connect.",
    }


async def test_a_few_per_minute_then_429_with_retry_after(linker):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    for _ in range(3):
        assert (await linker.client.post(SEND, headers=bearer(user))).status_code == 200
    limited = await linker.client.post(SEND, headers=bearer(user))
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert limited.headers["retry-after"] == "20"
    assert linker.bot_texts(chat).count(texts.TEST_MESSAGE) == 3

    # Another user is not affected; the limit frees up as time passes.
    other, other_chat = new_user(), new_chat_id()
    await linker.link(other, other_chat)
    assert (await linker.client.post(SEND, headers=bearer(other))).status_code == 200
    linker.clock.advance(seconds=20)
    assert (await linker.client.post(SEND, headers=bearer(user))).status_code == 200


async def test_the_limit_holds_across_replicas(start_linker):
    """Two linker instances share the limit through PostgreSQL."""
    first = await start_linker()
    second = await start_linker()
    second.clock.now = first.clock.now
    user, chat = new_user(), new_chat_id()
    await first.link(user, chat)
    codes = []
    for replica in (first, second, first, second):
        codes.append((await replica.client.post(SEND, headers=bearer(user))).status_code)
    assert codes == [200, 200, 200, 429]


async def test_blocked_by_the_user_is_502_and_pauses_the_link(linker):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    linker.standin.set_chat_state(chat, "blocked")
    response = await linker.client.post(SEND, headers=bearer(user))
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "telegram_error"
    assert body["message"] == "Telegram refused the message: Forbidden: bot was blocked by the user"
    assert (await linker.status(user))["telegram_enabled"] is False
    # Paused: no further attempt reaches Telegram.
    assert (await linker.client.post(SEND, headers=bearer(user))).status_code == 409


async def test_telegram_errors_are_502_with_the_reason(linker):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    linker.standin.add_fault(method="sendMessage", error_code=500)
    response = await linker.client.post(SEND, headers=bearer(user))
    assert response.status_code == 502
    assert response.json()["message"].startswith("Telegram refused the message:")
    assert (await linker.status(user))["telegram_enabled"] is True

    linker.standin.add_fault(method="sendMessage", error_code=429, retry_after=7)
    response = await linker.client.post(SEND, headers=bearer(user))
    assert response.status_code == 502
    assert response.headers["retry-after"] == "7"


async def test_a_migrated_group_gets_the_message_and_the_new_id_is_kept(linker):
    user, group, supergroup = new_user(), -new_chat_id(), -(10**12) - new_chat_id()
    await linker.link(user, group, chat_type="group")
    linker.standin.set_chat_state(group, "migrated", migrate_to=supergroup)
    response = await linker.client.post(SEND, headers=bearer(user))
    assert response.status_code == 200, response.text
    assert linker.bot_texts(supergroup) == [texts.TEST_MESSAGE]
    assert (await linker.status(user))["telegram_chat_id"] == str(supergroup)
