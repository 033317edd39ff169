"""verify-link: only a trusted bot links a chat (X-Bot-Api-Key), and one token links one chat
with one confirmation, whatever the concurrency (claim, confirm, link)."""

import asyncio

import pytest

from services.linker import texts
from services.linker.settings import LinkerSettings
from services.linker.tokens import TokenProblem
from shared.contract import EventType
from shared.settings import ConfigurationError
from tests.linker.helpers import BOT_API_KEY, bearer, bot_key
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

VERIFY = "/api/telegram/verify-link"


async def new_token(linker, user: str) -> str:
    response = await linker.client.get("/api/telegram/link-account", headers=bearer(user))
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def confirmations(linker, since: int) -> list[int]:
    """The chats that got the "linked" confirmation since the stand-in's sequence `since`."""
    return [int(m["chat_id"]) for m in linker.standin.sent(since) if m["text"] == texts.LINKED]


def sent_so_far(linker) -> int:
    state = linker.standin.state
    return state.sent_base + len(state.sent_log)


async def test_a_user_jwt_alone_no_longer_links_a_strangers_chat(linker):
    """The finding: any user could link any chat id, e.g. a stranger's private chat."""
    user, stranger = new_user(), new_chat_id()
    token = await new_token(linker, user)
    before = sent_so_far(linker)

    response = await linker.client.post(
        VERIFY, headers=bearer(user), json={"token": token, "chat_id": stranger}
    )
    assert response.status_code == 401
    assert response.json() == {
        "status": "error",
        "code": "bot_key_missing",
        "message": "the X-Bot-Api-Key header is required",
    }
    assert linker.standin.sent(before) == []
    assert (await linker.status(user))["telegram_enabled"] is False
    # The token is untouched: the user links their own chat the normal way.
    own_chat = new_chat_id()
    assert (await linker.say(own_chat, f"/start {token}")) == texts.LINKED
    assert (await linker.status(user))["telegram_chat_id"] == str(own_chat)


async def test_verify_link_is_disabled_without_a_bot_api_key(start_linker):
    linker = await start_linker(linker_bot_api_key=None)
    user, chat = new_user(), new_chat_id()
    token = await new_token(linker, user)
    for headers in (bearer(user), {**bearer(user), **bot_key()}, {}):
        response = await linker.client.post(
            VERIFY, headers=headers, json={"token": token, "chat_id": chat}
        )
        assert response.status_code == 403
        body = response.json()
        assert body["code"] == "verify_link_disabled"
        assert "/start TOKEN" in body["message"] and "LINKER_BOT_API_KEY" in body["message"]
    assert linker.bot_texts(chat) == []
    assert (await linker.say(chat, f"/start {token}")) == texts.LINKED


@pytest.mark.parametrize(
    "key",
    [
        "not-the-key",
        BOT_API_KEY[:-1],
        BOT_API_KEY[:-1] + "X",
        BOT_API_KEY + "X",
        "é" * 40,  # not ASCII: compared as bytes, never a crash
    ],
)
async def test_a_wrong_bot_key_is_403_and_links_nothing(linker, key):
    user, chat = new_user(), new_chat_id()
    token = await new_token(linker, user)
    headers = {"X-Bot-Api-Key": key.encode("latin-1")}
    response = await linker.client.post(
        VERIFY, headers=headers, json={"token": token, "chat_id": chat}
    )
    assert (response.status_code, response.json()["code"]) == (403, "bot_key_invalid")
    assert key not in response.text
    assert linker.bot_texts(chat) == []
    assert (await linker.status(user))["telegram_enabled"] is False


async def test_the_trusted_bot_links_the_tokens_user_without_a_jwt(linker, tap):
    user, chat = new_user(), new_chat_id()
    events = await tap(EventType.TELEGRAM_LINKED)
    token = await new_token(linker, user)
    response = await linker.client.post(
        VERIFY, headers=bot_key(), json={"token": token, "chat_id": chat, "chat_type": "private"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["telegram_enabled"] is True
    assert linker.bot_texts(chat) == [texts.LINKED]
    assert (await linker.status(user))["telegram_chat_id"] == str(chat)
    assert (await events.next()).user_id == user


async def test_with_a_jwt_as_well_it_must_verify_and_own_the_token(linker):
    owner, chat = new_user(), new_chat_id()
    token = await new_token(linker, owner)
    body = {"token": token, "chat_id": chat}
    for authorization in ("Bearer not-a-jwt", "Basic b3duZXI6cGFzcw==", "Bearer"):
        headers = {**bot_key(), "Authorization": authorization}
        response = await linker.client.post(VERIFY, headers=headers, json=body)
        assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    response = await linker.client.post(VERIFY, headers={**bot_key(), **bearer("x")}, json=body)
    assert (response.status_code, response.json()["code"]) == (403, "token_wrong_user")
    assert linker.bot_texts(chat) == []
    response = await linker.client.post(VERIFY, headers={**bot_key(), **bearer(owner)}, json=body)
    assert response.status_code == 200


async def test_twenty_concurrent_calls_with_one_token_link_one_chat_and_confirm_once(linker):
    user = new_user()
    chats = [new_chat_id() for _ in range(20)]
    token = await new_token(linker, user)
    before = sent_so_far(linker)

    responses = await asyncio.gather(
        *(
            linker.client.post(VERIFY, headers=bot_key(), json={"token": token, "chat_id": c})
            for c in chats
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [410] * 19, [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 410} == {"token_used"}
    (winner,) = [c for c, r in zip(chats, responses, strict=True) if r.status_code == 200]
    assert confirmations(linker, before) == [winner]
    assert (await linker.status(user))["telegram_chat_id"] == str(winner)


async def test_start_racing_verify_link_for_one_token_links_one_chat(linker):
    for _ in range(4):
        user, by_bot, by_start = new_user(), new_chat_id(), new_chat_id()
        token = await new_token(linker, user)
        before = sent_so_far(linker)

        linker.standin.user_sends(by_start, f"/start {token}")
        response = await linker.client.post(
            VERIFY, headers=bot_key(), json={"token": token, "chat_id": by_bot}
        )
        await linker.standin.wait_for(lambda c=by_start: len(linker.bot_texts(c)) == 1)

        start_reply = linker.bot_texts(by_start)[0]
        if response.status_code == 200:
            winner = by_bot
            assert start_reply == texts.TOKEN_REFUSED[TokenProblem.USED]
        else:
            winner = by_start
            assert (response.status_code, response.json()["code"]) == (410, "token_used")
            assert start_reply == texts.LINKED
        assert confirmations(linker, before) == [winner]
        assert (await linker.status(user))["telegram_chat_id"] == str(winner)


async def test_a_refused_confirmation_keeps_the_earlier_link_and_frees_the_token(linker):
    user, linked, unreachable, later = new_user(), new_chat_id(), new_chat_id(), new_chat_id()
    await linker.link(user, linked)
    token = await new_token(linker, user)
    linker.standin.set_chat_state(unreachable, "blocked")

    response = await linker.client.post(
        VERIFY, headers=bot_key(), json={"token": token, "chat_id": unreachable}
    )
    assert (response.status_code, response.json()["code"]) == (502, "telegram_error")
    status = await linker.status(user)
    assert (status["telegram_chat_id"], status["telegram_enabled"]) == (str(linked), True)

    # The claim was released: the same token links another chat, once.
    response = await linker.client.post(
        VERIFY, headers=bot_key(), json={"token": token, "chat_id": later}
    )
    assert response.status_code == 200, response.text
    assert (await linker.status(user))["telegram_chat_id"] == str(later)
    again = await linker.client.post(
        VERIFY, headers=bot_key(), json={"token": token, "chat_id": linked}
    )
    assert (again.status_code, again.json()["code"]) == (410, "token_used")


async def test_an_unreachable_database_is_a_503_with_retry_after(start_linker):
    linker = await start_linker(own_database_url="postgresql://postgres@127.0.0.1:9/nowhere")
    for method, path, headers in (
        ("GET", "/api/telegram/status", bearer(new_user())),
        ("POST", VERIFY, bot_key()),
    ):
        response = await linker.client.request(
            method, path, headers=headers, json={"token": "x" * 43, "chat_id": 42}
        )
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "unavailable"
        assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "key", ["short-key", "k" * 31, "a key with spaces in it, long enough to count", "é" * 40]
)
def test_an_unusable_bot_api_key_stops_the_start_naming_the_variable_not_the_value(key):
    with pytest.raises(ConfigurationError) as raised:
        LinkerSettings(app_env="development", linker_bot_api_key=key)
    assert "LINKER_BOT_API_KEY" in str(raised.value)
    assert key not in str(raised.value)
    assert LinkerSettings(app_env="development", linker_bot_api_key="k" * 32).linker_bot_api_key
