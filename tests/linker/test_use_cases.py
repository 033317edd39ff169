"""The linker's other use cases over in-memory fakes of its ports: a user's link, preferences, a
chat's links, the notifier's events, Retry. Fast, no servers; the real-server tests (test_flow,
test_preferences, test_groups, test_events, test_buttons) run the same through HTTP, aiogram,
RabbitMQ and PostgreSQL. Linking itself: test_use_cases_linking.py.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.linker import menu, texts
from services.linker.errors import (
    NoActiveLink,
    NotLinked,
    RateLimited,
    RetryNotSent,
    RetryRefused,
    TelegramRefused,
)
from services.linker.ports import SendRefused
from services.linker.retry import retry_event_id
from shared.contract import EventType
from shared.models import Activity
from tests.linker.fakes import (
    CHAT,
    GROUP,
    SUPERGROUP,
    USER,
    Ports,
    link_by_start,
)

pytestmark = pytest.mark.unit


# ------------------------------------------------------------------------- the user's link
async def test_status_shows_the_chat_and_whether_it_is_paused(ports: Ports) -> None:
    assert (await ports.links.status(USER)).linked is False
    await link_by_start(ports)
    status = await ports.links.status(USER)
    assert (status.linked, status.enabled, status.chat_id) == (True, True, CHAT)
    assert status.linked_at == ports.clock.now


async def test_unlink_announces_only_a_removed_link(ports: Ports) -> None:
    assert await ports.links.unlink(USER) is False
    assert ports.events.published == []
    await link_by_start(ports, chat=GROUP)

    assert await ports.links.unlink(USER) is True

    [event] = ports.events.events(EventType.TELEGRAM_UNLINKED)
    assert event.user_id == USER and event.data == {"chat_type": "group"}
    assert ports.store.links[USER].chat_id is None and not ports.store.links[USER].enabled
    assert await ports.links.unlink(USER) is False


async def test_the_test_message_needs_an_active_link(ports: Ports) -> None:
    with pytest.raises(NoActiveLink) as refused:
        await ports.links.send_test_message(USER)
    assert refused.value.code == "not_linked" and "not linked" in str(refused.value)
    await link_by_start(ports)
    await ports.links.on_blocked(USER, ports.clock.now, "blocked")
    with pytest.raises(NoActiveLink, match="paused"):
        await ports.links.send_test_message(USER)


async def test_the_test_message_is_limited_and_goes_in_the_links_language(ports: Ports) -> None:
    await link_by_start(ports)
    await ports.links.change_preferences(USER, lambda p: replace(p, language="en"))
    for _ in range(3):
        await ports.links.send_test_message(USER)
    with pytest.raises(RateLimited):
        await ports.links.send_test_message(USER)
    assert ports.sender.sent[-1] == (CHAT, texts.test_message("en"))
    assert len(ports.sender.sent) == 3


async def test_a_blocked_test_message_pauses_the_link(ports: Ports) -> None:
    await link_by_start(ports)
    ports.sender.refuse[CHAT] = SendRefused("Forbidden: bot was blocked", blocked=True)
    with pytest.raises(TelegramRefused):
        await ports.links.send_test_message(USER)
    assert ports.store.links[USER].enabled is False


# ---------------------------------------------------------------------------- preferences
async def test_preferences_of_a_user_without_a_link_are_not_linked(ports: Ports) -> None:
    with pytest.raises(NotLinked) as refused:
        await ports.links.preferences(USER)
    assert not isinstance(refused.value, NoActiveLink)  # a 404, not the test message's 409
    with pytest.raises(NotLinked):
        await ports.links.change_preferences(USER, lambda p: p.muting("post_success", True))


async def test_preferences_change_and_read_back(ports: Ports) -> None:
    await link_by_start(ports)
    changed = await ports.links.change_preferences(USER, lambda p: p.muting("post_success", True))
    assert changed.muted_types == ("post_success",)
    assert (await ports.links.preferences(USER)).muted_types == ("post_success",)
    assert ports.store.links[USER].muted_types == ["post_success"]


async def test_a_chats_settings_change_every_link_to_it(ports: Ports) -> None:
    await link_by_start(ports, "user-a", GROUP, "group")
    await link_by_start(ports, "user-b", GROUP, "group")
    changed = await ports.links.change_chat_preferences(
        GROUP, lambda p: p.muting("daily_summary", True)
    )
    assert changed is not None and changed.muted_types == ("daily_summary",)
    for user in ("user-a", "user-b"):
        assert ports.store.links[user].muted_types == ["daily_summary"]
    assert await ports.links.chat_preferences(CHAT) is None


# ---------------------------------------------------------------------------------- chats
async def test_stop_unlinks_everyone_in_the_chat_and_announces_each(ports: Ports) -> None:
    await link_by_start(ports, "user-a", GROUP, "group")
    await link_by_start(ports, "user-b", GROUP, "group")
    await link_by_start(ports, "user-c", CHAT)

    assert await ports.links.stop_chat(GROUP) == ["user-a", "user-b"]

    unlinked = ports.events.events(EventType.TELEGRAM_UNLINKED)
    assert [(e.user_id, e.data["chat_type"]) for e in unlinked] == [
        ("user-a", "group"),
        ("user-b", "group"),
    ]
    assert ports.store.links["user-c"].enabled


async def test_pause_and_resume_a_chat(ports: Ports) -> None:
    await link_by_start(ports)
    assert await ports.links.set_chat_enabled(CHAT, False) == [USER]
    assert await ports.links.set_chat_enabled(CHAT, False) == []
    assert await ports.links.set_chat_enabled(CHAT, True) == [USER]


async def test_only_a_groups_links_migrate_and_only_to_a_supergroup(ports: Ports) -> None:
    await link_by_start(ports, "in-group", GROUP, "group")
    assert await ports.links.migrate_chat(GROUP, -4000000001) == []  # not a supergroup's id
    assert ("store.move_chat_by_lookup",) not in ports.journal

    assert await ports.links.migrate_chat(GROUP, SUPERGROUP) == ["in-group"]
    link = ports.store.links["in-group"]
    assert ports.cipher.decrypt(link.chat_id or "") == SUPERGROUP
    assert link.chat_type == "supergroup"


# ----------------------------------------------------------------- the notifier's events
async def test_blocked_pauses_a_link_made_before_the_event_only(ports: Ports) -> None:
    await link_by_start(ports)
    before = ports.clock.now - timedelta(seconds=1)
    assert await ports.links.on_blocked(USER, before, "Forbidden") is False
    assert ports.store.links[USER].enabled
    assert await ports.links.on_blocked(USER, ports.clock.now, "Forbidden") is True
    assert ports.store.links[USER].enabled is False


async def test_chat_migrated_moves_a_basic_groups_link_only(ports: Ports) -> None:
    await link_by_start(ports, "private-user", CHAT)
    await link_by_start(ports, "group-user", GROUP, "group")
    now = ports.clock.now

    assert await ports.links.on_chat_migrated("private-user", now, SUPERGROUP) is False
    assert await ports.links.on_chat_migrated("group-user", now, -4000000001) is False
    assert ("store.move_chat", "group-user") not in ports.journal  # refused before the store
    assert await ports.links.on_chat_migrated("group-user", now, SUPERGROUP) is True

    assert ports.cipher.decrypt(ports.store.links["private-user"].chat_id or "") == CHAT
    assert ports.cipher.decrypt(ports.store.links["group-user"].chat_id or "") == SUPERGROUP


# ---------------------------------------------------------------------------------- Retry
def failure(user: str = USER, **data: object) -> Activity:
    return Activity(
        event_id=uuid.uuid4(),
        user_id=user,
        type=EventType.POST_FAILURE.value,
        occurred_at=datetime(2026, 2, 26, tzinfo=UTC),
        platform="instagram",
        details={"data": {"platform": "instagram", "error": "timeout", **data}},
    )


async def test_retry_publishes_the_failures_data_with_the_press_as_event_id(ports: Ports) -> None:
    await link_by_start(ports)
    post = failure(post_id="p-1")
    ports.store.activity[post.event_id] = post

    assert await ports.links.request_retry(CHAT, post.event_id, "press-1") == "instagram"

    [(event, mandatory)] = ports.events.published[1:]
    assert event.type is EventType.POST_RETRY_REQUESTED and mandatory is False
    assert event.event_id == retry_event_id("press-1")
    assert event.data == {
        "platform": "instagram",
        "error": "timeout",
        "post_id": "p-1",
        "original_event_id": str(post.event_id),
    }


async def test_retry_of_another_chats_failure_is_refused(ports: Ports) -> None:
    await link_by_start(ports, "owner", CHAT)
    await link_by_start(ports, "other", CHAT + 1)
    post = failure("owner")
    ports.store.activity[post.event_id] = post
    with pytest.raises(RetryRefused):
        await ports.links.request_retry(CHAT + 1, post.event_id, "press")
    with pytest.raises(RetryRefused):
        await ports.links.request_retry(CHAT, uuid.uuid4(), "press")
    assert ports.events.events(EventType.POST_RETRY_REQUESTED) == []


async def test_retry_is_limited_per_post_and_per_user(ports: Ports) -> None:
    await link_by_start(ports)
    post = failure()
    ports.store.activity[post.event_id] = post
    for press in range(menu.RETRIES_PER_POST):
        await ports.links.request_retry(CHAT, post.event_id, f"press-{press}")
    with pytest.raises(RateLimited) as limited:
        await ports.links.request_retry(CHAT, post.event_id, "one-more")
    assert 0 < limited.value.retry_after <= menu.RETRY_PERIOD.total_seconds()

    for press in range(menu.RETRIES_PER_USER - menu.RETRIES_PER_POST):
        other = failure()
        ports.store.activity[other.event_id] = other
        await ports.links.request_retry(CHAT, other.event_id, f"other-{press}")
    last = failure()
    ports.store.activity[last.event_id] = last
    with pytest.raises(RateLimited):
        await ports.links.request_retry(CHAT, last.event_id, "over-the-user-limit")
    assert len(ports.events.events(EventType.POST_RETRY_REQUESTED)) == menu.RETRIES_PER_USER

    ports.clock.advance(seconds=menu.RETRY_PERIOD.total_seconds())
    await ports.links.request_retry(CHAT, last.event_id, "after-the-period")


async def test_a_retry_the_broker_does_not_confirm_is_not_sent(ports: Ports) -> None:
    await link_by_start(ports)
    post = failure()
    ports.store.activity[post.event_id] = post
    ports.events.refusing = True
    with pytest.raises(RetryNotSent):
        await ports.links.request_retry(CHAT, post.event_id, "press")
