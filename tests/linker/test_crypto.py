"""Chat ids at rest: encryption, key rotation and lookup digests."""

import pytest
from cryptography.fernet import Fernet

from services.common.chat_ids import ChatIdCipher, ChatIdError
from shared.settings import ConfigurationError

pytestmark = pytest.mark.unit

CHAT = 7910169750


def test_without_keys_the_plain_id_is_stored_and_looked_up():
    cipher = ChatIdCipher([])
    assert not cipher.encrypts
    assert cipher.encrypt(CHAT) == str(CHAT)
    assert cipher.decrypt(str(CHAT)) == CHAT
    assert cipher.lookup(CHAT) == [str(CHAT)]
    assert not cipher.needs_rotation(str(CHAT))


@pytest.mark.parametrize("chat_id", [CHAT, -1001234567890, 777000])
def test_encrypted_ids_round_trip_and_hide_the_id(chat_id):
    cipher = ChatIdCipher([Fernet.generate_key().decode()])
    stored = cipher.encrypt(chat_id)
    assert str(abs(chat_id)) not in stored
    assert stored != cipher.encrypt(chat_id)  # randomised
    assert cipher.decrypt(stored) == chat_id


def test_lookup_digest_is_stable_keyed_and_not_the_id():
    key = Fernet.generate_key().decode()
    digest = ChatIdCipher([key]).lookup(CHAT)[0]
    assert digest == ChatIdCipher([key]).lookup(CHAT)[0]
    assert len(digest) == 64 and str(CHAT) not in digest
    assert digest != ChatIdCipher([Fernet.generate_key().decode()]).lookup(CHAT)[0]
    assert digest != ChatIdCipher([key]).lookup(CHAT + 1)[0]


def test_rotation_reads_old_values_and_finds_old_digests():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = ChatIdCipher([old])
    stored, old_digest = before.encrypt(CHAT), before.lookup(CHAT)[0]

    after = ChatIdCipher([new, old])
    assert after.decrypt(stored) == CHAT
    assert old_digest in after.lookup(CHAT)
    assert after.lookup(CHAT)[0] == ChatIdCipher([new]).lookup(CHAT)[0]  # what new rows store
    assert after.needs_rotation(stored)
    assert not after.needs_rotation(after.encrypt(CHAT))


def test_plain_ids_written_before_encryption_stay_readable_and_findable():
    cipher = ChatIdCipher([Fernet.generate_key().decode()])
    assert cipher.decrypt(str(CHAT)) == CHAT
    assert str(CHAT) in cipher.lookup(CHAT)
    assert cipher.needs_rotation(str(CHAT))


def test_a_value_from_an_unknown_key_is_an_error():
    stored = ChatIdCipher([Fernet.generate_key().decode()]).encrypt(CHAT)
    with pytest.raises(ChatIdError, match="not configured"):
        ChatIdCipher([Fernet.generate_key().decode()]).decrypt(stored)
    with pytest.raises(ChatIdError, match="CHAT_ID_ENCRYPTION_KEY"):
        ChatIdCipher([]).decrypt(stored)


def test_a_bad_key_is_a_configuration_error_naming_the_variable():
    with pytest.raises(ConfigurationError, match="CHAT_ID_ENCRYPTION_KEY"):
        ChatIdCipher(["not-a-fernet-key"])
