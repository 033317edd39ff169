"""The linker's use cases (`LinkService`) over in-memory fakes of its ports: fast, no servers.

The real-server tests (test_linking, test_verify_link, test_flow, test_buttons, test_events...)
run the same use cases through HTTP, aiogram, RabbitMQ and PostgreSQL; these pin each rule of a
use case on its own: what it asks its ports, in which order, and what it refuses.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from services.linker import menu, texts
from services.linker.errors import (
    BotUnavailable,
    NoActiveLink,
    NotLinked,
    RateLimited,
    RetryNotSent,
    RetryRefused,
    TelegramRefused,
    TokenRefused,
)
from services.linker.linking import LINK_TOKENS_PER_MINUTE, ChatOutcome
from services.linker.ports import SendRefused
from services.linker.retry import retry_event_id
from services.linker.tokens import TokenProblem, hash_token
from shared.contract import EventType
from shared.models import Activity
from tests.linker.fakes import Ports, fake_service

pytestmark = pytest.mark.unit

USER = "user-1"
CHAT = 7910169750
GROUP = -4012345678
SUPERGROUP = -1001234567890


@pytest.fixture
def ports() -> Ports:
    return fake_service([Fernet.generate_key().decode()])


async def linked(ports: Ports, user: str = USER, chat: int = CHAT, kind: str | None = None) -> str:
    """Link `user` to `chat` by `/start TOKEN`; the token."""
    issued = await ports.links.issue_link(user)
    outcome, _ = await ports.links.redeem_in_chat(issued.token, chat, kind)
    assert outcome is ChatOutcome.LINKED
    return issued.token


# ------------------------------------------------------------------------------ issuing tokens
async def test_issue_link_stores_only_the_hash_and_revokes_the_earlier_token(ports: Ports) -> None:
    first = await ports.links.issue_link(USER)
    second = await ports.links.issue_link(USER)

    assert second.linking_url == f"https://t.me/fakebot?start={second.token}"
    assert second.expires_at == ports.clock.now + timedelta(minutes=15)
    assert set(ports.store.tokens) == {hash_token(first.token), hash_token(second.token)}
    assert ports.store.tokens[hash_token(first.token)].revoked_at == ports.clock.now
    outcome, problem = await ports.links.redeem_in_chat(first.token, CHAT, None)
    assert (outcome, problem) == (ChatOutcome.REFUSED, TokenProblem.REVOKED)


async def test_issue_link_is_rate_limited_per_user(ports: Ports) -> None:
    for _ in range(LINK_TOKENS_PER_MINUTE):
        await ports.links.issue_link(USER)
    with pytest.raises(RateLimited) as refused:
        await ports.links.issue_link(USER)
    assert refused.value.code == "rate_limited" and refused.value.retry_after > 0
    await ports.links.issue_link("another-user")  # the limit is per user
    ports.clock.advance(minutes=1)
    await ports.links.issue_link(USER)


async def test_issue_link_without_the_bot_name_stores_no_token(ports: Ports) -> None:
    ports.bot_name.name = None
    with pytest.raises(BotUnavailable):
        await ports.links.issue_link(USER)
    assert ports.store.tokens == {}


# ------------------------------------------------------------------------- /start TOKEN
async def test_start_links_the_chat_encrypted_and_announces_it(ports: Ports) -> None:
    await linked(ports)

    link = ports.store.links[USER]
    assert link.enabled and link.chat_type == "private"
    assert link.chat_id != str(CHAT) and ports.cipher.decrypt(link.chat_id or "") == CHAT
    [event] = ports.events.events(EventType.TELEGRAM_LINKED)
    assert event.user_id == USER and event.data == {"chat_type": "private"}
    assert ports.events.published[0][1] is False  # mandatory=False: nothing has to be bound


async def test_the_same_start_twice_is_already_linked_elsewhere_used(ports: Ports) -> None:
    token = await linked(ports)
    assert await ports.links.redeem_in_chat(token, CHAT, None) == (ChatOutcome.ALREADY_LINKED, None)
    assert await ports.links.redeem_in_chat(token, CHAT + 1, None) == (
        ChatOutcome.REFUSED,
        TokenProblem.USED,
    )
    assert len(ports.events.events(EventType.TELEGRAM_LINKED)) == 1


async def test_start_with_a_malformed_or_expired_token_changes_nothing(ports: Ports) -> None:
    refused = (ChatOutcome.REFUSED, TokenProblem.NOT_FOUND)
    assert await ports.links.redeem_in_chat("not a token!", CHAT, None) == refused
    assert ports.journal == []  # not even looked up
    issued = await ports.links.issue_link(USER)
    ports.clock.advance(minutes=15)
    assert await ports.links.redeem_in_chat(issued.token, CHAT, None) == (
        ChatOutcome.REFUSED,
        TokenProblem.EXPIRED,
    )
    assert ports.store.links == {} and ports.events.published == []


async def test_a_lost_announcement_does_not_undo_the_link(ports: Ports) -> None:
    ports.events.refusing = True
    await linked(ports)
    assert ports.store.links[USER].enabled


# -------------------------------------------------------------------------- verify-link
async def test_verify_link_claims_then_confirms_in_the_chat_then_links(ports: Ports) -> None:
    issued = await ports.links.issue_link(USER)
    ports.journal.clear()

    assert await ports.links.verify_link(issued.token, GROUP, "group") == USER

    token_hash = hash_token(issued.token)
    assert ports.journal == [
        ("store.claim", token_hash),
        ("send", GROUP),
        ("store.link", USER),
        ("publish", "telegram.linked"),
    ]
    assert ports.sender.sent == [(GROUP, texts.LINKED)]
    assert ports.store.links[USER].chat_type == "group"


async def test_verify_link_for_another_users_token_is_refused_before_anything(
    ports: Ports,
) -> None:
    issued = await ports.links.issue_link(USER)
    with pytest.raises(TokenRefused) as refused:
        await ports.links.verify_link(issued.token, CHAT, user_id="someone-else")
    assert refused.value.problem is TokenProblem.WRONG_USER
    assert ports.sender.sent == [] and ports.store.links == {}
    assert ports.store.tokens[hash_token(issued.token)].used_at is None


async def test_verify_link_twice_the_second_is_used(ports: Ports) -> None:
    issued = await ports.links.issue_link(USER)
    await ports.links.verify_link(issued.token, CHAT, user_id=USER)
    with pytest.raises(TokenRefused) as refused:
        await ports.links.verify_link(issued.token, CHAT + 1)
    assert refused.value.problem is TokenProblem.USED and refused.value.code == "token_used"
    assert ports.sender.sent == [(CHAT, texts.LINKED)]


async def test_a_chat_telegram_refuses_links_nothing_and_the_token_works_again(
    ports: Ports,
) -> None:
    token = await linked(ports, chat=CHAT)  # an earlier link stays as it was
    issued = await ports.links.issue_link(USER)
    ports.sender.refuse[GROUP] = SendRefused("bot was kicked", retry_after=None)
    ports.journal.clear()

    with pytest.raises(TelegramRefused) as refused:
        await ports.links.verify_link(issued.token, GROUP)

    assert str(refused.value) == "Telegram refused the message: bot was kicked"
    assert [entry[0] for entry in ports.journal] == ["store.claim", "send", "store.release"]
    assert ports.cipher.decrypt(ports.store.links[USER].chat_id or "") == CHAT
    del ports.sender.refuse[GROUP]
    assert await ports.links.verify_link(issued.token, GROUP) == USER
    assert token != issued.token


async def test_a_confirmation_cancelled_mid_send_releases_the_claim(ports: Ports) -> None:
    issued = await ports.links.issue_link(USER)
    ports.sender.gate = asyncio.Event()
    call = asyncio.create_task(ports.links.verify_link(issued.token, CHAT))
    while ("send", CHAT) not in ports.journal:
        await asyncio.sleep(0)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    assert ("store.release", hash_token(issued.token)) in ports.journal
    assert ports.store.tokens[hash_token(issued.token)].used_at is None
    assert ports.store.links == {}


async def test_a_group_that_migrated_while_confirming_is_linked_as_the_supergroup(
    ports: Ports,
) -> None:
    issued = await ports.links.issue_link(USER)
    ports.sender.refuse[GROUP] = SendRefused("migrated", migrate_to=SUPERGROUP)

    await ports.links.verify_link(issued.token, GROUP, "group")

    link = ports.store.links[USER]
    assert ports.cipher.decrypt(link.chat_id or "") == SUPERGROUP
    assert link.chat_type == "supergroup"
    assert ports.sender.sent == [(SUPERGROUP, texts.LINKED)]


async def test_a_malformed_token_is_not_found_without_a_claim(ports: Ports) -> None:
    with pytest.raises(TokenRefused) as refused:
        await ports.links.verify_link("x" * 65, CHAT)
    assert refused.value.problem is TokenProblem.NOT_FOUND and ports.journal == []


# ------------------------------------------------------------------------- the user's link
async def test_status_shows_the_chat_and_whether_it_is_paused(ports: Ports) -> None:
    assert (await ports.links.status(USER)).linked is False
    await linked(ports)
    status = await ports.links.status(USER)
    assert (status.linked, status.enabled, status.chat_id) == (True, True, CHAT)
    assert status.linked_at == ports.clock.now


async def test_unlink_announces_only_a_removed_link(ports: Ports) -> None:
    assert await ports.links.unlink(USER) is False
    assert ports.events.published == []
    await linked(ports, chat=GROUP)

    assert await ports.links.unlink(USER) is True

    [event] = ports.events.events(EventType.TELEGRAM_UNLINKED)
    assert event.user_id == USER and event.data == {"chat_type": "group"}
    assert ports.store.links[USER].chat_id is None and not ports.store.links[USER].enabled
    assert await ports.links.unlink(USER) is False


async def test_the_test_message_needs_an_active_link(ports: Ports) -> None:
    with pytest.raises(NoActiveLink) as refused:
        await ports.links.send_test_message(USER)
    assert refused.value.code == "not_linked" and "not linked" in str(refused.value)
    await linked(ports)
    await ports.links.on_blocked(USER, ports.clock.now, "blocked")
    with pytest.raises(NoActiveLink, match="paused"):
        await ports.links.send_test_message(USER)


async def test_the_test_message_is_limited_and_goes_in_the_links_language(ports: Ports) -> None:
    await linked(ports)
    await ports.links.change_preferences(USER, lambda p: replace(p, language="en"))
    for _ in range(3):
        await ports.links.send_test_message(USER)
    with pytest.raises(RateLimited):
        await ports.links.send_test_message(USER)
    assert ports.sender.sent[-1] == (CHAT, texts.test_message("en"))
    assert len(ports.sender.sent) == 3


async def test_a_blocked_test_message_pauses_the_link(ports: Ports) -> None:
    await linked(ports)
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
    await linked(ports)
    changed = await ports.links.change_preferences(USER, lambda p: p.muting("post_success", True))
    assert changed.muted_types == ("post_success",)
    assert (await ports.links.preferences(USER)).muted_types == ("post_success",)
    assert ports.store.links[USER].muted_types == ["post_success"]


async def test_a_chats_settings_change_every_link_to_it(ports: Ports) -> None:
    await linked(ports, "user-a", GROUP, "group")
    await linked(ports, "user-b", GROUP, "group")
    changed = await ports.links.change_chat_preferences(
        GROUP, lambda p: p.muting("daily_summary", True)
    )
    assert changed is not None and changed.muted_types == ("daily_summary",)
    for user in ("user-a", "user-b"):
        assert ports.store.links[user].muted_types == ["daily_summary"]
    assert await ports.links.chat_preferences(CHAT) is None


# ---------------------------------------------------------------------------------- chats
async def test_stop_unlinks_everyone_in_the_chat_and_announces_each(ports: Ports) -> None:
    await linked(ports, "user-a", GROUP, "group")
    await linked(ports, "user-b", GROUP, "group")
    await linked(ports, "user-c", CHAT)

    assert await ports.links.stop_chat(GROUP) == ["user-a", "user-b"]

    unlinked = ports.events.events(EventType.TELEGRAM_UNLINKED)
    assert [(e.user_id, e.data["chat_type"]) for e in unlinked] == [
        ("user-a", "group"),
        ("user-b", "group"),
    ]
    assert ports.store.links["user-c"].enabled


async def test_pause_and_resume_a_chat(ports: Ports) -> None:
    await linked(ports)
    assert await ports.links.set_chat_enabled(CHAT, False) == [USER]
    assert await ports.links.set_chat_enabled(CHAT, False) == []
    assert await ports.links.set_chat_enabled(CHAT, True) == [USER]


async def test_only_a_groups_links_migrate_and_only_to_a_supergroup(ports: Ports) -> None:
    await linked(ports, "in-group", GROUP, "group")
    assert await ports.links.migrate_chat(GROUP, -4000000001) == []  # not a supergroup's id
    assert ("store.move_chat_by_lookup",) not in ports.journal

    assert await ports.links.migrate_chat(GROUP, SUPERGROUP) == ["in-group"]
    link = ports.store.links["in-group"]
    assert ports.cipher.decrypt(link.chat_id or "") == SUPERGROUP
    assert link.chat_type == "supergroup"


# ----------------------------------------------------------------- the notifier's events
async def test_blocked_pauses_a_link_made_before_the_event_only(ports: Ports) -> None:
    await linked(ports)
    before = ports.clock.now - timedelta(seconds=1)
    assert await ports.links.on_blocked(USER, before, "Forbidden") is False
    assert ports.store.links[USER].enabled
    assert await ports.links.on_blocked(USER, ports.clock.now, "Forbidden") is True
    assert ports.store.links[USER].enabled is False


async def test_chat_migrated_moves_a_basic_groups_link_only(ports: Ports) -> None:
    await linked(ports, "private-user", CHAT)
    await linked(ports, "group-user", GROUP, "group")
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
    await linked(ports)
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
    await linked(ports, "owner", CHAT)
    await linked(ports, "other", CHAT + 1)
    post = failure("owner")
    ports.store.activity[post.event_id] = post
    with pytest.raises(RetryRefused):
        await ports.links.request_retry(CHAT + 1, post.event_id, "press")
    with pytest.raises(RetryRefused):
        await ports.links.request_retry(CHAT, uuid.uuid4(), "press")
    assert ports.events.events(EventType.POST_RETRY_REQUESTED) == []


async def test_retry_is_limited_per_post_and_per_user(ports: Ports) -> None:
    await linked(ports)
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
    await linked(ports)
    post = failure()
    ports.store.activity[post.event_id] = post
    ports.events.refusing = True
    with pytest.raises(RetryNotSent):
        await ports.links.request_retry(CHAT, post.event_id, "press")
