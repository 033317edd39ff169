"""Team accounts: a group linked with `/start@bot TOKEN`, then upgraded to a supergroup; in a
group only its administrators change its notifications."""

import pytest

from services.common.callbacks import short_uuid
from services.linker import texts
from shared.contract import EventType
from shared.db import session_scope
from shared.models import TelegramLink
from tests.linker.helpers import DEFAULT_PREFERENCES, bearer
from tests.linker.helpers import publish_internal as publish
from tests.linker.test_buttons import record_failure
from tests.support.ids import new_chat_id, new_user
from tests.support.waiting import eventually

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

    await eventually(moved)
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

    await eventually(moved)
    assert await chat_type(sessions, user) == "supergroup"
    message_id = await linker.notify(
        supergroup, "✅", {"🔕": linker.sign(supergroup, "m", "daily_summary")}
    )
    pressed = await linker.press(
        supergroup, message_id, linker.sign(supergroup, "m", "daily_summary")
    )
    assert pressed.text == "🔕 일일 리포트 알림을 끕니다"
    assert (await linker.preferences(user))["muted_types"] == ["daily_summary"]


# ------------------------------------------------------------- only administrators change
MEMBER = {"id": 2001, "first_name": "Member"}
ADMINS_ONLY = "🔒 이 그룹의 알림은 그룹 관리자만 바꿀 수 있습니다"
UNKNOWN = "⚠️ 관리자 권한을 확인하지 못했습니다. 잠시 후 다시 시도해 주세요"
UNCHANGED = DEFAULT_PREFERENCES


async def press_as(linker, chat: int, message_id: int, data: str, user=MEMBER) -> str | None:
    update = linker.standin.press(chat, message_id, data, user=user)
    return (await linker.standin.wait_for_callback_answer(update["callback_query"]["id"])).text


async def test_in_a_group_a_member_who_is_no_administrator_changes_nothing(linker, tap, sessions):
    user, group = new_user(), -new_chat_id()
    await link_group(linker, user, group)  # by the group's creator
    events = await tap(EventType.POST_RETRY_REQUESTED, EventType.TELEGRAM_UNLINKED)
    for command in (
        "/stop",
        "/mute post_success",
        "/unmute post_failure",
        "/stop@piwpiwtelegrambot",
    ):
        assert await linker.say(group, command, user=MEMBER) == ADMINS_ONLY, command
    # Showing the settings is for everyone; pressing them is not.
    await linker.say(group, "/settings", user=MEMBER)
    menu = linker.standin.bot_messages(group)[-1]
    failure = await record_failure(sessions, user)
    presses = {
        "a settings button": menu["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        "mute": linker.sign(group, "m", "post_success"),
        "retry": linker.sign(group, "r", short_uuid(failure)),
    }
    for what, data in presses.items():
        assert await press_as(linker, group, menu["message_id"], data) == ADMINS_ONLY, what
    assert await linker.preferences(user) == UNCHANGED
    assert (await linker.status(user))["telegram_enabled"] is True
    assert await events.queue.get(fail=False) is None

    for status in ("left", "kicked", "restricted", "member"):
        linker.standin.set_member(group, MEMBER["id"], status)
        assert await linker.say(group, "/mute post_success", user=MEMBER) == ADMINS_ONLY
    assert await linker.preferences(user) == UNCHANGED

    # Promoted: the same member may; demoted again: no longer.
    linker.standin.set_member(group, MEMBER["id"], "administrator")
    assert await linker.say(group, "/mute post_success", user=MEMBER) == texts.muted_reply(
        "post_success", "ko"
    )
    assert await press_as(linker, group, menu["message_id"], presses["mute"]) == (
        "🔕 게시 완료 알림을 끕니다"
    )
    linker.standin.set_member(group, MEMBER["id"], "member")
    assert await linker.say(group, "/unmute post_success", user=MEMBER) == ADMINS_ONLY
    assert (await linker.preferences(user))["muted_types"] == ["post_success"]


async def test_the_refusal_is_in_the_groups_language(linker):
    user, group = new_user(), -new_chat_id()
    await link_group(linker, user, group)
    await linker.client.put(
        "/api/telegram/preferences", headers=bearer(user), json={"language": "en"}
    )
    assert await linker.say(group, "/stop", user=MEMBER) == (
        "🔒 Only the group's administrators can change its notifications"
    )
    message_id = await linker.notify(group, "✅", {"🔕": linker.sign(group, "m", "post_success")})
    assert await press_as(linker, group, message_id, linker.sign(group, "m", "post_success")) == (
        "🔒 Only the group's administrators can change its notifications"
    )


async def test_an_anonymous_administrator_writes_as_the_group_and_a_channel_is_refused(linker):
    user, group = new_user(), -(10**12) - new_chat_id()
    await link_group(linker, user, group)
    as_group = {"id": group, "title": "Marketing team"}
    assert await linker.say(group, "/mute post_success", sender_chat=as_group) == (
        texts.muted_reply("post_success", "ko")
    )
    channel = {"id": -(10**12) - new_chat_id(), "type": "channel", "title": "News"}
    assert await linker.say(group, "/unmute post_success", sender_chat=channel) == ADMINS_ONLY
    assert (await linker.preferences(user))["muted_types"] == ["post_success"]


async def test_linking_a_group_needs_an_administrator_and_leaves_the_token_unused(linker):
    user, group = new_user(), -new_chat_id()
    response = await linker.client.get("/api/telegram/link-account", headers=bearer(user))
    token = response.json()["token"]
    start = f"/start@piwpiwtelegrambot {token}"
    reply = await linker.say(group, start, chat_type="group", user=MEMBER)
    assert reply == texts.LINK_ADMINS_ONLY
    assert "telegram_chat_id" not in await linker.status(user)
    assert await linker.say(group, start) == texts.LINKED  # the creator, with the same link
    assert (await linker.status(user))["telegram_chat_id"] == str(group)


async def test_a_paused_group_is_resumed_by_an_administrator_only(linker):
    user, group = new_user(), -new_chat_id()
    await link_group(linker, user, group)
    await linker.app.state.links.set_chat_enabled(group, False)  # the bot was removed
    assert await linker.say(group, "/start", user=MEMBER) == ADMINS_ONLY
    assert (await linker.status(user))["telegram_enabled"] is False
    assert await linker.say(group, "/start") == texts.RESUMED
    assert (await linker.status(user))["telegram_enabled"] is True


async def test_when_telegram_cannot_say_who_is_an_administrator_nothing_changes(linker):
    user, group = new_user(), -new_chat_id()
    await link_group(linker, user, group)
    for fault in ({"error_code": 500}, {"result": True}, {"result": {"user": {"id": 1}}}):
        linker.standin.add_fault(method="getChatMember", **fault)
        assert await linker.say(group, "/mute post_success") == UNKNOWN, fault
    assert (await linker.preferences(user))["muted_types"] == []
    # A server whose ChatMember lacks fields added since (an older or self-hosted Bot API):
    # the status is still read.
    older = {"status": "creator", "user": {"id": 1000, "is_bot": False, "first_name": "G"}}
    linker.standin.add_fault(method="getChatMember", result=older)
    assert await linker.say(group, "/mute post_success") == texts.muted_reply("post_success", "ko")
