"""Team accounts: a group linked with `/start@bot TOKEN`, then upgraded to a supergroup."""

import pytest

from services.linker import texts
from shared.contract import EventType
from shared.db import session_scope
from shared.models import TelegramLink
from tests.linker.helpers import bearer, new_chat_id, new_user, wait_until
from tests.linker.test_events import publish

pytestmark = pytest.mark.integration


async def link_group(linker, user: str, group: int) -> None:
    """What Telegram sends after the user opens `?startgroup=TOKEN` and picks the group."""
    response = await linker.client.get("/api/telegram/link-account", headers=bearer(user))
    token = response.json()["token"]
    reply = await linker.say(
        group, f"/start@piwpiwtelegrambot {token}", chat_type="group", title="Marketing team"
    )
    assert reply == texts.LINKED


async def chat_type(sessions, user: str) -> str | None:
    async with session_scope(sessions) as session:
        link = await session.get(TelegramLink, user)
    return link.chat_type if link is not None else None


async def test_a_linked_group_follows_its_migration_to_a_supergroup(linker, sessions):
    first, second, group = new_user(), new_user(), -new_chat_id()
    await link_group(linker, first, group)
    await link_group(linker, second, group)
    assert await chat_type(sessions, first) == "group"
    assert (await linker.say(group, "/status@piwpiwtelegrambot")) == texts.STATUS_LINKED

    updates = linker.standin.migrate(group)
    supergroup = updates[0]["message"]["migrate_to_chat_id"]

    async def moved() -> bool:
        chats = [(await linker.status(user))["telegram_chat_id"] for user in (first, second)]
        return chats == [str(supergroup)] * 2

    await wait_until(moved)
    assert await chat_type(sessions, first) == "supergroup"
    assert (await linker.status(first))["telegram_enabled"] is True

    # The links work in the supergroup: commands, settings, the test message.
    assert await linker.say(supergroup, "/status") == texts.STATUS_LINKED
    assert await linker.say(supergroup, "/mute@piwpiwtelegrambot post_success") == (
        texts.muted_reply("post_success", "ko")
    )
    for user in (first, second):  # the group's settings are the group's
        assert (await linker.preferences(user))["muted_types"] == ["post_success"]
    response = await linker.client.post("/api/telegram/send-test-message", headers=bearer(first))
    assert response.status_code == 200, response.text
    assert linker.bot_texts(supergroup)[-1] == texts.TEST_MESSAGE


async def test_a_group_link_follows_the_notifiers_chat_migrated_event(linker, sessions):
    user, group = new_user(), -new_chat_id()
    supergroup = -(10**12) - abs(group)
    await link_group(linker, user, group)
    await publish(
        linker.rabbitmq_url, EventType.TELEGRAM_CHAT_MIGRATED, user, {"new_chat_id": supergroup}
    )

    async def moved() -> bool:
        return (await linker.status(user))["telegram_chat_id"] == str(supergroup)

    await wait_until(moved)
    assert await chat_type(sessions, user) == "supergroup"
    message_id = await linker.notify(
        supergroup, "✅", {"🔕": linker.sign(supergroup, "m", "daily_summary")}
    )
    pressed = await linker.press(
        supergroup, message_id, linker.sign(supergroup, "m", "daily_summary")
    )
    assert pressed.text == "🔕 일일 리포트 알림을 끕니다"
    assert (await linker.preferences(user))["muted_types"] == ["daily_summary"]
