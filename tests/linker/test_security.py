"""Security at the edges: JWT attacks on every endpoint, secrets kept out of logs, chat ids
encrypted at rest."""

import logging
import time

import jwt
import pytest
from cryptography.fernet import Fernet

from services.common.chat_ids import ChatIdCipher
from services.common.logging import JsonFormatter
from shared.db import session_scope
from shared.models import TelegramLink
from tests.linker.helpers import JWT_SECRET, bearer, bot_key, make_jwt
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

ENDPOINTS = [
    ("GET", "/api/telegram/link-account"),
    ("GET", "/api/telegram/status"),
    ("POST", "/api/telegram/send-test-message"),
    ("POST", "/api/telegram/unlink-account"),
    ("GET", "/api/telegram/preferences"),
    ("PUT", "/api/telegram/preferences"),
]
"""The endpoints that act for the JWT's user (verify-link is the trusted bot's: X-Bot-Api-Key)."""
VERIFY = "/api/telegram/verify-link"


def _none_alg(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 60}, None, algorithm="none")


BAD_TOKENS = {
    "alg none": lambda u: _none_alg(u),
    "wrong key": lambda u: make_jwt(u, secret="not-the-secret-of-the-platform-0123456789"),
    "alg outside the list": lambda u: make_jwt(u, secret=JWT_SECRET * 2, algorithm="HS512"),
    "expired": lambda u: make_jwt(u, expires_in=-3600),
    "missing exp": lambda u: make_jwt(u, expires_in=None),
    "missing sub": lambda u: make_jwt(None),
    "garbage": lambda u: "garbage",
}


@pytest.mark.parametrize("attack", list(BAD_TOKENS))
async def test_every_endpoint_refuses_bad_tokens_with_401_json(linker, attack):
    user = new_user()
    headers = {"Authorization": f"Bearer {BAD_TOKENS[attack](user)}"}
    for method, path in ENDPOINTS:
        response = await linker.client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (attack, path, response.text)
        body = response.json()
        assert body["status"] == "error" and body["code"] == "unauthorized"
    # verify-link with the bot's key: a JWT sent along must verify too.
    response = await linker.client.post(VERIFY, headers={**headers, **bot_key()}, json={})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized"), attack
    assert (await linker.status(user))["telegram_enabled"] is False


async def test_every_endpoint_needs_a_bearer_token(linker):
    for method, path in ENDPOINTS:
        response = await linker.client.request(method, path, json={})
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"


async def test_audience_and_issuer_are_enforced_when_configured(start_linker):
    linker = await start_linker(jwt_audience="sns-telegram", jwt_issuer="sns-platform")
    user = new_user()
    good = bearer(user, aud="sns-telegram", iss="sns-platform")
    assert (await linker.client.get("/api/telegram/status", headers=good)).status_code == 200
    for claims in ({"aud": "other", "iss": "sns-platform"}, {"aud": "sns-telegram"}, {}):
        response = await linker.client.get("/api/telegram/status", headers=bearer(user, **claims))
        assert response.status_code == 401, claims


async def test_no_jwt_bot_token_or_chat_id_in_the_logs(linker, caplog):
    caplog.set_level(logging.DEBUG)
    user, chat = new_user(), new_chat_id()
    token = make_jwt(user)
    headers = {"Authorization": f"Bearer {token}"}
    response = await linker.client.get("/api/telegram/link-account", headers=headers)
    link_token = response.json()["token"]
    await linker.say(chat, f"/start {link_token}")
    for method, path in ENDPOINTS:
        await linker.client.request(method, path, headers=headers, json={"token": token})
    expired = make_jwt(user, expires_in=-10)
    await linker.client.get("/api/telegram/status", headers={"Authorization": f"Bearer {expired}"})

    formatter = JsonFormatter()
    logged = "\n".join(
        f"{record.getMessage()} {record.__dict__} {formatter.format(record)}"
        for record in caplog.records
    )
    assert caplog.records, "expected the flow to log something"
    for secret in (token, expired, token.split(".")[2], link_token, "42:linker-tests"):
        assert secret not in logged
    assert str(chat) not in logged


async def test_chat_ids_are_encrypted_at_rest_and_readable_after_rotation(start_linker, sessions):
    old_key = Fernet.generate_key().decode()
    linker = await start_linker(chat_id_encryption_key=old_key)
    user, chat = new_user(), new_chat_id()
    await linker.link(user, chat)

    async with session_scope(sessions) as session:
        row = await session.get(TelegramLink, user)
    assert row is not None and row.chat_id is not None and row.chat_lookup is not None
    assert str(chat) not in row.chat_id and str(chat) not in row.chat_lookup
    assert ChatIdCipher([old_key]).decrypt(row.chat_id) == chat
    assert (await linker.status(user))["telegram_chat_id"] == str(chat)

    # A new key goes first; the old one still reads old rows and finds the chat by lookup.
    new_key = Fernet.generate_key().decode()
    rotated = await start_linker(chat_id_encryption_key=f"{new_key},{old_key}")
    assert (await rotated.status(user))["telegram_chat_id"] == str(chat)
    assert await rotated.say(chat, "/status") == "✅ 연결됨: 이 채팅에서 SNS 알림을 받고 있습니다."
    assert (
        await rotated.client.post("/api/telegram/send-test-message", headers=bearer(user))
    ).status_code == 200
