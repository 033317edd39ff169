"""Updates by webhook: the secret header, and updates Telegram sends that the stand-in cannot."""

import asyncio

import pytest
import uvicorn

from services.linker import texts
from tests.linker.helpers import bearer
from tests.support.ids import new_chat_id, new_user
from tests.support.processes import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SECRET = "webhook-secret_0123456789"
HOOK = "/telegram/webhook"
_update_ids = iter(range(10**6, 10**7))


def message_update(chat_id: int, text: str | None = None, chat_type: str = "private", **extra):
    chat = {"id": chat_id, "type": chat_type}
    if chat_type == "private":
        chat["first_name"] = "User"
    else:
        chat["title"] = "Team"
    message = {"message_id": 1, "date": 1767225600, "chat": chat, **extra}
    if text is not None:
        message["text"] = text
        message["from"] = {"id": abs(chat_id), "is_bot": False, "first_name": "User"}
        if text.startswith("/"):
            length = len(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    return {"update_id": next(_update_ids), "message": message}


def kicked_update(chat_id: int):
    user = {"id": chat_id, "is_bot": False, "first_name": "User"}
    bot = {"id": 42, "is_bot": True, "first_name": "PiwPiw", "username": "piwpiwtelegrambot"}
    return {
        "update_id": next(_update_ids),
        "my_chat_member": {
            "chat": {"id": chat_id, "type": "private", "first_name": "User"},
            "from": user,
            "date": 1767225600,
            "old_chat_member": {"status": "member", "user": bot},
            "new_chat_member": {"status": "kicked", "user": bot, "until_date": 0},
        },
    }


@pytest.fixture
async def hooked(start_linker):
    return await start_linker(
        telegram_webhook_url="https://linker.example/telegram/webhook",
        telegram_webhook_secret=SECRET,
    )


async def post(linker, update, secret: str | None = SECRET):
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    return await linker.client.post(HOOK, json=update, headers=headers)


async def test_set_webhook_was_called_with_the_secret(hooked):
    hook = hooked.standin.state.webhook
    assert hook is not None
    assert hook.url == "https://linker.example/telegram/webhook"
    assert hook.secret_token == SECRET
    assert "my_chat_member" in (hook.allowed_updates or [])


async def test_a_missing_secret_is_401_and_a_wrong_one_403(hooked):
    chat = new_chat_id()
    missing = await post(hooked, message_update(chat, "/help"), secret=None)
    assert missing.status_code == 401
    assert missing.json()["status"] == "error"
    for wrong in ("wrong", SECRET[:-1], SECRET + "x", ""):
        response = await post(hooked, message_update(chat, "/help"), secret=wrong)
        assert response.status_code == 403, wrong
        assert response.json()["code"] == "forbidden"
    assert hooked.bot_texts(chat) == []  # nothing was handled


async def test_a_body_that_is_not_an_update_is_400(hooked):
    for body in ({"nothing": True}, [], "text"):
        response = await post(hooked, body)
        assert response.status_code == 400


async def test_start_with_a_token_by_webhook_links(hooked):
    user, chat = new_user(), new_chat_id()
    link = await hooked.client.get("/api/telegram/link-account", headers=bearer(user))
    token = link.json()["token"]
    response = await post(hooked, message_update(chat, f"/start {token}"))
    assert response.status_code == 200
    assert hooked.bot_texts(chat) == [texts.LINKED]
    assert (await hooked.status(user))["telegram_chat_id"] == str(chat)


async def test_blocking_the_bot_pauses_and_restarting_resumes(hooked):
    user, chat = new_user(), new_chat_id()
    token = (await hooked.client.get("/api/telegram/link-account", headers=bearer(user))).json()[
        "token"
    ]
    await post(hooked, message_update(chat, f"/start {token}"))

    assert (await post(hooked, kicked_update(chat))).status_code == 200
    status = await hooked.status(user)
    assert status["telegram_enabled"] is False
    assert status["telegram_chat_id"] == str(chat)
    refused = await hooked.client.post("/api/telegram/send-test-message", headers=bearer(user))
    assert refused.status_code == 409

    # "Restart bot" after unblocking sends a bare /start.
    await post(hooked, message_update(chat, "/start"))
    assert hooked.bot_texts(chat)[-1] == texts.RESUMED
    assert (await hooked.status(user))["telegram_enabled"] is True


async def test_a_group_migration_moves_the_link(hooked):
    user, group, supergroup = new_user(), -new_chat_id(), -(10**12) - new_chat_id()
    token = (await hooked.client.get("/api/telegram/link-account", headers=bearer(user))).json()[
        "token"
    ]
    hooked.standin.set_member(group, abs(group), "administrator")  # the sender of the update
    await post(hooked, message_update(group, f"/start {token}", chat_type="group"))
    assert (await hooked.status(user))["telegram_chat_id"] == str(group)

    migration = message_update(group, chat_type="group", migrate_to_chat_id=supergroup)
    assert (await post(hooked, migration)).status_code == 200
    assert (await hooked.status(user))["telegram_chat_id"] == str(supergroup)


async def test_the_stand_in_pushes_updates_to_a_served_linker(start_linker):
    """The real path: Telegram (the stand-in) POSTs to the served webhook with the secret."""
    port = free_port()
    linker = await start_linker(
        telegram_webhook_url=f"http://127.0.0.1:{port}/telegram/webhook",
        telegram_webhook_secret=SECRET,
    )
    config = uvicorn.Config(
        linker.app, host="127.0.0.1", port=port, lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)
        user, chat = new_user(), new_chat_id()
        token = (
            await linker.client.get("/api/telegram/link-account", headers=bearer(user))
        ).json()["token"]
        assert await linker.say(chat, f"/start {token}") == texts.LINKED
        assert (await linker.status(user))["telegram_enabled"] is True
        assert linker.standin.stats["webhook_delivered"] >= 1
    finally:
        server.should_exit = True
        await serving


async def test_a_command_for_another_bot_in_a_group_is_not_ours(hooked):
    user, group = new_user(), -new_chat_id()
    token = (await hooked.client.get("/api/telegram/link-account", headers=bearer(user))).json()[
        "token"
    ]
    hooked.standin.set_member(group, abs(group), "creator")  # the sender of the updates
    await post(hooked, message_update(group, f"/start@piwpiwtelegrambot {token}", "group"))
    for command in ("/stop@otherbot", "/mute@otherbot post_success", "/start@otherbot x"):
        assert (await post(hooked, message_update(group, command, "group"))).status_code == 200
    assert hooked.bot_texts(group) == [texts.LINKED]  # none of them was answered
    assert (await hooked.status(user))["telegram_enabled"] is True
    assert (await hooked.preferences(user))["muted_types"] == []
