"""Signed, dated `callback_data` for inline buttons (Telegram's limit: at most 64 bytes).

The notifier puts buttons on messages and the linker handles the presses; both know the bot
token, so the signing key is derived from it and no new secret is needed. A button's data is
`<action>:<argument>:<issued>:<signature>`: `issued` is the Unix time it was signed, in base 36
(6 characters until 2038), and the signature covers the chat the message was sent to, the action,
the argument and that time. So a press is only honoured from that chat (nobody can craft data
that acts for another user's chat), and the handler can tell how old a button is.

Buttons sent before the date was added have three fields (`<action>:<argument>:<signature>`);
`verify` still recognises a genuine one, with `issued_at=None`, so the handler can answer it
("expired") instead of calling it forged. Anything else Telegram hands over (any text, any
length, lone surrogates) is simply not verified: `verify` never raises.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string
import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

MAX_BYTES = 64
"""Telegram's limit for callback_data."""
SIGNATURE_CHARS = 16
"""96 bits of HMAC-SHA256, base64url."""
MAX_ISSUED_CHARS = 7
"""Base-36 seconds: 7 characters reach the year 4400, so the date always converts."""

_ALLOWED = frozenset(string.ascii_letters + string.digits + "!\"#$%&'()*+,-./;<=>?@[\\]^_`{|}~")
"""What an action or argument may contain: printable ASCII without ':' or spaces."""
_BASE36 = re.compile(rf"[0-9a-z]{{1,{MAX_ISSUED_CHARS}}}")
_DIGITS = string.digits + string.ascii_lowercase


class CallbackError(ValueError):
    """The button's data would not fit, or a field holds what signed data cannot carry."""


class Signed(NamedTuple):
    """A button press whose data was signed for the chat it came from."""

    action: str
    argument: str
    issued_at: datetime | None
    """When the button was signed; None for a genuine button of the older, undated format."""

    def age(self, now: datetime) -> timedelta | None:
        """How old the button is at `now` (None when undated)."""
        return None if self.issued_at is None else now - self.issued_at


def callback_key(bot_token: str) -> bytes:
    """The signing key for one bot (changes when the token is rotated: old buttons expire)."""
    return hashlib.sha256(b"sns-telegram callback v1\x00" + bot_token.encode()).digest()


def _digest(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:SIGNATURE_CHARS]


def _signature(key: bytes, chat_id: int, action: str, argument: str, issued: str) -> str:
    return _digest(key, f"v2:{chat_id}:{action}:{argument}:{issued}")


def _undated_signature(key: bytes, chat_id: int, action: str, argument: str) -> str:
    return _digest(key, f"{chat_id}:{action}:{argument}")


def _base36(value: int) -> str:
    out = ""
    while True:
        value, digit = divmod(value, 36)
        out = _DIGITS[digit] + out
        if not value:
            return out


def sign(
    key: bytes,
    chat_id: int,
    action: str,
    argument: str = "",
    *,
    issued_at: datetime | None = None,
) -> str:
    """The callback_data for `action` with `argument`, valid only when pressed in `chat_id`,
    dated `issued_at` (default: now)."""
    if not action or not set(action) <= _ALLOWED or not set(argument) <= _ALLOWED:
        raise CallbackError("action and argument must be printable ASCII without ':' or spaces")
    moment = issued_at if issued_at is not None else datetime.now(UTC)
    issued = _base36(max(0, int(moment.timestamp())))
    data = f"{action}:{argument}:{issued}:{_signature(key, chat_id, action, argument, issued)}"
    if len(data) > MAX_BYTES:
        raise CallbackError(f"callback data is {len(data)} bytes, more than {MAX_BYTES}")
    return data


def verify(key: bytes, chat_id: int, data: object) -> Signed | None:
    """The press `data` stands for when it was signed for `chat_id` with `key`; None otherwise."""
    if not isinstance(data, str) or not data or len(data) > MAX_BYTES or not data.isascii():
        return None
    parts = data.split(":")
    if len(parts) == 4:
        action, argument, issued, signature = parts
        if not _BASE36.fullmatch(issued):
            return None
        expected = _signature(key, chat_id, action, argument, issued)
        if not hmac.compare_digest(signature, expected):
            return None
        return Signed(action, argument, datetime.fromtimestamp(int(issued, 36), UTC))
    if len(parts) == 3:
        action, argument, signature = parts
        if not hmac.compare_digest(signature, _undated_signature(key, chat_id, action, argument)):
            return None
        return Signed(action, argument, None)
    return None


def short_uuid(value: uuid.UUID) -> str:
    """A UUID in 22 characters (for arguments)."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def parse_short_uuid(text: str) -> uuid.UUID | None:
    """The UUID `short_uuid` encoded, or None."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return uuid.UUID(bytes=raw)
    except (ValueError, TypeError):
        return None
