"""Chat ids at rest: Fernet encryption with key rotation, and keyed digests for lookups.

CHAT_ID_ENCRYPTION_KEY holds Fernet keys, comma-separated, newest first. New values are encrypted
with the newest key; any listed key decrypts. A chat is found by `chat_lookup`, an HMAC of the chat
id under a key derived from one Fernet key: `lookup()` returns the digest under every configured
key (newest first, the one to store) so rows written before a rotation are still found.
Without keys (development only) the plain id is stored and is its own lookup value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from prometheus_client import Counter

from shared.settings import ConfigurationError

_PLAIN = re.compile(r"^-?\d{1,20}$")
_LOOKUP_INFO = b"sns-telegram/chat-lookup/v1"

UNDECRYPTABLE = Counter(
    "chat_ids_undecryptable_total",
    "Stored chat ids that the configured CHAT_ID_ENCRYPTION_KEY could not decrypt (a key retired "
    "too early, or missing): those users get nothing until it is put back",
)


class ChatIdError(ValueError):
    """A stored chat id that cannot be read with the configured keys."""


def _lookup_key(fernet_key: str) -> bytes:
    # A separate key for the digests, so they reveal nothing about the encryption key.
    raw = base64.urlsafe_b64decode(fernet_key.encode())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LOOKUP_INFO).derive(raw)


class ChatIdCipher:
    """Encrypts, decrypts and digests Telegram chat ids with the configured keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        try:
            fernets = [Fernet(key.encode()) for key in keys]
        except (ValueError, TypeError):
            raise ConfigurationError(
                "CHAT_ID_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64-encoded bytes), "
                "comma-separated, newest first"
            ) from None
        self._fernet = MultiFernet(fernets) if fernets else None
        self._newest = fernets[0] if fernets else None
        self._lookup_keys = [_lookup_key(key) for key in keys]

    @property
    def encrypts(self) -> bool:
        """True when keys are configured (stored ids are ciphertext)."""
        return self._fernet is not None

    def encrypt(self, chat_id: int) -> str:
        """The value to store for `chat_id`: ciphertext under the newest key, or the plain id."""
        if self._fernet is None:
            return str(chat_id)
        return self._fernet.encrypt(str(chat_id).encode()).decode()

    def decrypt(self, stored: str) -> int:
        """The chat id of a stored value (ciphertext under any configured key, or a plain id)."""
        if _PLAIN.match(stored):
            return int(stored)  # written before encryption was configured
        if self._fernet is None:
            UNDECRYPTABLE.inc()
            raise ChatIdError("the chat id is encrypted but CHAT_ID_ENCRYPTION_KEY is not set")
        try:
            plain = self._fernet.decrypt(stored.encode()).decode()
        except InvalidToken:
            UNDECRYPTABLE.inc()
            raise ChatIdError(
                "the chat id was encrypted with a key that is not configured"
            ) from None
        return int(plain)

    def needs_rotation(self, stored: str) -> bool:
        """True when `stored` is not ciphertext under the newest key (re-save it to rotate)."""
        if self._newest is None:
            return False
        try:
            self._newest.decrypt(stored.encode())
        except InvalidToken:
            return True
        return False

    def lookup(self, chat_id: int) -> list[str]:
        """The lookup digests of `chat_id`, newest key first; store the first, query them all."""
        message = str(chat_id).encode()
        digests = [hmac.new(key, message, hashlib.sha256).hexdigest() for key in self._lookup_keys]
        # The plain id finds rows written without encryption (and is the value when unencrypted).
        return [*digests, str(chat_id)]
