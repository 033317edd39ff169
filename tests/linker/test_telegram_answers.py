"""The linker is liberal in what it reads from Telegram: a successful answer (`ok: true`) whose
result has another shape (a proxy, an older or self-hosted Bot API server) is still a success
where nobody needs the result, and a clear, safe refusal where the result is needed."""

import pytest

from services.linker import texts
from tests.linker.helpers import bearer, bot_key
from tests.support.ids import new_chat_id, new_user
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ODD_RESULTS = [True, {}, [], "sent", 1.5]


async def polling_without_a_username(start_linker):
    """A linker without TELEGRAM_BOT_USERNAME, once polling has asked getMe for itself."""
    linker = await start_linker(telegram_bot_username=None)
    await eventually(
        lambda: linker.standin.stats["requests"].get("getUpdates"), what="polling started"
    )
    return linker


@pytest.mark.parametrize("result", ODD_RESULTS)
async def test_test_message_and_verify_link_succeed_on_an_ok_of_another_shape(linker, result):
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)
    linker.standin.add_fault(method="sendMessage", result=result)
    response = await linker.client.post("/api/telegram/send-test-message", headers=bearer(user))
    assert response.status_code == 200, response.text
    assert linker.bot_texts(chat)[-1] == texts.TEST_MESSAGE

    other, other_chat = new_user(), new_chat_id()
    token = (await linker.client.get("/api/telegram/link-account", headers=bearer(other))).json()
    linker.standin.add_fault(method="sendMessage", result=result)
    response = await linker.client.post(
        "/api/telegram/verify-link",
        headers={**bot_key(), **bearer(other)},
        json={"token": token["token"], "chat_id": str(other_chat)},
    )
    assert response.status_code == 200, response.text
    assert (await linker.status(other))["telegram_chat_id"] == str(other_chat)


async def test_a_command_whose_reply_gets_an_ok_of_another_shape_is_no_failure(linker):
    user, chat = new_user(), new_chat_id()
    linker.standin.add_fault(method="sendMessage", result={})
    await linker.link(user, chat)  # the "linked" reply was answered oddly; the link holds
    assert (await linker.status(user))["telegram_enabled"] is True
    assert await linker.say(chat, "/status") == texts.STATUS_LINKED
    assert linker.bot_texts(chat) == [texts.LINKED, texts.STATUS_LINKED]  # no "try again"


@pytest.mark.parametrize("result", [{}, True, {"username": 5}])
async def test_without_a_configured_username_an_unreadable_get_me_is_a_clear_503(
    start_linker, result
):
    linker = await polling_without_a_username(start_linker)
    linker.standin.add_fault(method="getMe", result=result)
    response = await linker.client.get("/api/telegram/link-account", headers=bearer(new_user()))
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "telegram_unavailable"
    # Once Telegram answers properly, the username is learned.
    response = await linker.client.get("/api/telegram/link-account", headers=bearer(new_user()))
    assert response.status_code == 200, response.text
    assert response.json()["linking_url"].startswith("https://t.me/piwpiwtelegrambot?start=")


async def test_get_me_of_another_shape_that_names_the_bot_is_enough(start_linker):
    linker = await polling_without_a_username(start_linker)
    linker.standin.add_fault(method="getMe", result={"username": "otherbot", "id": "?"})
    response = await linker.client.get("/api/telegram/link-account", headers=bearer(new_user()))
    assert response.status_code == 200, response.text
    assert response.json()["linking_url"].startswith("https://t.me/otherbot?start=")
