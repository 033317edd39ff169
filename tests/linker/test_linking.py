"""Link tokens end to end: reuse, expiry, replacement, another user's token, verify-link."""

import pytest
from sqlmodel import select

from services.linker import texts
from services.linker.tokens import TokenProblem, hash_token
from shared.contract import EventType
from shared.db import session_scope
from shared.models import LinkToken, TelegramLink
from tests.linker.helpers import bearer, bot_key
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

VERIFY = "/api/telegram/verify-link"


async def new_token(linker, user: str) -> str:
    response = await linker.client.get("/api/telegram/link-account", headers=bearer(user))
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def test_only_the_hash_of_a_token_is_stored(linker, sessions):
    user = new_user()
    token = await new_token(linker, user)
    async with session_scope(sessions) as session:
        rows = (await session.exec(select(LinkToken).where(LinkToken.user_id == user))).all()
    assert [row.token_hash for row in rows] == [hash_token(token)]
    assert token not in rows[0].model_dump_json()
    lifetime = rows[0].expires_at - rows[0].created_at
    assert lifetime.total_seconds() == 900


async def test_a_used_token_cannot_link_another_chat(linker):
    user, chat, other_chat = new_user(), new_chat_id(), new_chat_id()
    token = await linker.link(user, chat)

    reply = await linker.say(other_chat, f"/start {token}")
    assert reply == texts.TOKEN_REFUSED[TokenProblem.USED]
    assert (await linker.status(user))["telegram_chat_id"] == str(chat)

    # The same /start again in the linked chat (Telegram may redeliver) is not an error.
    assert await linker.say(chat, f"/start {token}") == texts.ALREADY_LINKED


async def test_an_expired_token_is_refused_in_the_chat_and_by_the_api(linker):
    user, chat = new_user(), new_chat_id()
    token = await new_token(linker, user)
    linker.clock.advance(minutes=15)

    assert await linker.say(chat, f"/start {token}") == texts.TOKEN_REFUSED[TokenProblem.EXPIRED]
    response = await linker.client.post(
        VERIFY, headers={**bot_key(), **bearer(user)}, json={"token": token, "chat_id": str(chat)}
    )
    assert response.status_code == 410
    assert response.json() == {
        "status": "error",
        "code": "token_expired",
        "message": "link token has expired",
    }
    assert (await linker.status(user))["telegram_enabled"] is False


async def test_asking_again_invalidates_the_earlier_unused_token(linker):
    user, chat = new_user(), new_chat_id()
    first = await new_token(linker, user)
    second = await new_token(linker, user)
    assert first != second

    assert await linker.say(chat, f"/start {first}") == texts.TOKEN_REFUSED[TokenProblem.REVOKED]
    assert (await linker.say(chat, f"/start {second}")).startswith("✅ Telegram 계정이 연결")


@pytest.mark.parametrize("payload", ["nonsense", "a" * 64, "!!", "a" * 80])
async def test_an_unknown_or_malformed_token_gets_a_friendly_reply(linker, payload):
    chat = new_chat_id()
    assert (
        await linker.say(chat, f"/start {payload}") == texts.TOKEN_REFUSED[TokenProblem.NOT_FOUND]
    )


async def test_verify_link_links_and_confirms_in_the_chat(linker, tap):
    user, chat = new_user(), new_chat_id()
    events = await tap(EventType.TELEGRAM_LINKED)
    token = await new_token(linker, user)
    response = await linker.client.post(
        VERIFY, headers={**bot_key(), **bearer(user)}, json={"token": token, "chat_id": str(chat)}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "success",
        "message": "Telegram account linked successfully",
        "telegram_enabled": True,
    }
    assert linker.bot_texts(chat)[-1] == texts.LINKED
    assert (await linker.status(user))["telegram_chat_id"] == str(chat)
    assert (await events.next()).user_id == user

    # Used now: a second redemption says so.
    again = await linker.client.post(
        VERIFY, headers={**bot_key(), **bearer(user)}, json={"token": token, "chat_id": chat}
    )
    assert (again.status_code, again.json()["code"]) == (410, "token_used")


async def test_verify_link_refuses_another_users_token(linker):
    owner, thief, chat = new_user(), new_user(), new_chat_id()
    token = await new_token(linker, owner)
    response = await linker.client.post(
        VERIFY, headers={**bot_key(), **bearer(thief)}, json={"token": token, "chat_id": chat}
    )
    assert (response.status_code, response.json()["code"]) == (403, "token_wrong_user")
    assert (await linker.status(thief))["telegram_enabled"] is False
    assert linker.bot_texts(chat) == []
    # The owner can still use it.
    response = await linker.client.post(
        VERIFY, headers={**bot_key(), **bearer(owner)}, json={"token": token, "chat_id": chat}
    )
    assert response.status_code == 200


async def test_verify_link_unknown_token_is_404(linker):
    response = await linker.client.post(
        VERIFY,
        headers={**bot_key(), **bearer(new_user())},
        json={"token": "x" * 43, "chat_id": 12345},
    )
    assert (response.status_code, response.json()["code"]) == (404, "token_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"chat_id": "123"},
        {"token": "abc"},
        {"token": "abc", "chat_id": "12a"},
        {"token": "abc", "chat_id": 1.5},
        {"token": "abc", "chat_id": None},
        {"token": "abc", "chat_id": True},
        {"token": "abc", "chat_id": 0},
        {"token": "abc", "chat_id": "1" * 30},
        {"token": 5, "chat_id": "123"},
        {"token": "abc", "chat_id": "123", "chat_type": "castle"},
        [],
        "just a string",
    ],
)
async def test_verify_link_invalid_bodies_are_400(linker, body):
    response = await linker.client.post(
        VERIFY, headers={**bot_key(), **bearer(new_user())}, json=body
    )
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["status"] == "error" and error["code"] in ("bad_request", "invalid_chat_id")


async def test_verify_link_with_a_body_that_is_not_json_is_400(linker):
    response = await linker.client.post(
        VERIFY,
        headers={**bot_key(), **bearer(new_user()), "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 400


async def test_verify_link_to_a_chat_the_bot_cannot_reach_links_nothing(linker):
    user, chat = new_user(), new_chat_id()
    linker.standin.set_chat_state(chat, "blocked")
    token = await new_token(linker, user)
    response = await linker.client.post(
        VERIFY, headers={**bot_key(), **bearer(user)}, json={"token": token, "chat_id": chat}
    )
    assert response.status_code == 502
    assert response.json()["code"] == "telegram_error"
    assert "blocked" in response.json()["message"]
    assert (await linker.status(user))["telegram_enabled"] is False
    # Nothing was used up: the token still works in a reachable chat.
    linker.standin.set_chat_state(chat, "ok")
    response = await linker.client.post(
        VERIFY, headers={**bot_key(), **bearer(user)}, json={"token": token, "chat_id": chat}
    )
    assert response.status_code == 200


async def test_a_group_can_be_linked_and_its_type_is_stored(linker, sessions):
    user, group = new_user(), -new_chat_id()
    reply = await linker.link(user, group, chat_type="group", title="Team")
    assert reply
    assert linker.bot_texts(group)[-1] == texts.LINKED
    async with session_scope(sessions) as session:
        link = await session.get(TelegramLink, user)
    assert link is not None and link.chat_type == "group"
    assert (await linker.status(user))["telegram_chat_id"] == str(group)


async def test_group_command_addressed_to_the_bot_links(linker):
    user, group = new_user(), -new_chat_id()
    token = await new_token(linker, user)
    reply = await linker.say(group, f"/start@piwpiwtelegrambot {token}", chat_type="supergroup")
    assert reply == texts.LINKED


async def test_bot_username_comes_from_getme_when_not_configured(start_linker):
    linker = await start_linker(telegram_bot_username=None)
    token = await new_token(linker, new_user())
    response = await linker.client.get("/api/telegram/link-account", headers=bearer(new_user()))
    assert response.json()["bot_username"] == "piwpiwtelegrambot"
    assert token


async def test_linking_urls_are_rate_limited_per_user(linker):
    user = new_user()
    for _ in range(10):
        await new_token(linker, user)
    limited = await linker.client.get("/api/telegram/link-account", headers=bearer(user))
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert (
        await linker.client.get("/api/telegram/link-account", headers=bearer(new_user()))
    ).status_code == 200
    linker.clock.advance(seconds=6)
    assert await new_token(linker, user)
