"""Key rotation: after `sns-telegram rotate-keys`, the old key can be removed."""

import uuid

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from services.cli import main
from services.common.chat_ids import ChatIdCipher, ChatIdError
from services.linker.rotate import rotate_chat_ids

pytestmark = pytest.mark.integration


async def insert(engine, user_id, stored, lookup):
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO telegram_links (user_id, chat_id, chat_lookup, enabled) "
                "VALUES (:u, :c, :l, true)"
            ),
            {"u": user_id, "c": stored, "l": lookup},
        )


async def stored(engine, user_id):
    async with engine.connect() as conn:
        row = await conn.execute(
            text("SELECT chat_id, chat_lookup FROM telegram_links WHERE user_id = :u"),
            {"u": user_id},
        )
        return row.one()


async def test_old_and_plain_chat_ids_are_reencrypted_under_the_newest_key(
    fresh_database_url, monkeypatch
):
    from shared.db import create_engine

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    engine = create_engine(fresh_database_url, pool_size=1)
    before = ChatIdCipher([old])
    users = {f"u-{uuid.uuid4().hex[:6]}": 1_000_000 + i for i in range(5)}
    for user, chat in users.items():
        await insert(engine, user, before.encrypt(chat), before.lookup(chat)[0])
    await insert(engine, "plain-user", "424242", "424242")

    report = rotate_chat_ids(fresh_database_url, ChatIdCipher([new, old]), page=2)
    assert (report.scanned, report.rotated, report.unreadable) == (6, 6, 0)

    after = ChatIdCipher([new])  # the old key is gone
    for user, chat in {**users, "plain-user": 424242}.items():
        value, lookup = await stored(engine, user)
        assert after.decrypt(value) == chat
        assert lookup == after.lookup(chat)[0]
    assert rotate_chat_ids(fresh_database_url, ChatIdCipher([new, old])).rotated == 0

    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("CHAT_ID_ENCRYPTION_KEY", new)  # nothing left under the old key
    assert main(["rotate-keys"]) == 0
    await engine.dispose()


async def test_ids_under_an_unlisted_key_are_reported_and_left_alone(fresh_database_url, capsys):
    from shared.db import create_engine

    lost, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    engine = create_engine(fresh_database_url, pool_size=1)
    value = ChatIdCipher([lost]).encrypt(77)
    await insert(engine, "lost-key-user", value, "x")
    report = rotate_chat_ids(fresh_database_url, ChatIdCipher([new]))
    assert report.unreadable == 1 and report.rotated == 0
    assert (await stored(engine, "lost-key-user"))[0] == value
    with pytest.raises(ChatIdError, match="not set"):
        rotate_chat_ids(fresh_database_url, ChatIdCipher([]))
    await engine.dispose()
