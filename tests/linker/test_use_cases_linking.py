"""Linking (`linking.py`) over in-memory fakes of the linker's ports: issuing tokens, `/start
TOKEN`, verify-link's claim, confirm, link. Fast, no servers; the real-server tests
(test_linking, test_verify_link) run the same through HTTP, aiogram and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from services.linker import texts
from services.linker.errors import (
    BotUnavailable,
    RateLimited,
    TelegramRefused,
    TokenRefused,
)
from services.linker.linking import LINK_TOKENS_PER_MINUTE, ChatOutcome
from services.linker.ports import SendRefused
from services.linker.tokens import TokenProblem, hash_token
from shared.contract import EventType
from tests.linker.fakes import (
    CHAT,
    GROUP,
    SUPERGROUP,
    USER,
    Ports,
    link_by_start,
)

pytestmark = pytest.mark.unit


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
    await link_by_start(ports)

    link = ports.store.links[USER]
    assert link.enabled and link.chat_type == "private"
    assert link.chat_id != str(CHAT) and ports.cipher.decrypt(link.chat_id or "") == CHAT
    [event] = ports.events.events(EventType.TELEGRAM_LINKED)
    assert event.user_id == USER and event.data == {"chat_type": "private"}
    assert ports.events.published[0][1] is False  # mandatory=False: nothing has to be bound


async def test_the_same_start_twice_is_already_linked_elsewhere_used(ports: Ports) -> None:
    token = await link_by_start(ports)
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
    await link_by_start(ports)
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
    token = await link_by_start(ports, chat=CHAT)  # an earlier link stays as it was
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
