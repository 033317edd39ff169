"""Signed `callback_data` for inline buttons (DESIGN.md: at most 64 bytes).

The notifier puts buttons on messages and the linker handles the presses; both know the bot
token, so the signing key is derived from it and no new secret is needed. A button's data is
`<action>:<argument>:<signature>`; the signature covers the chat the message was sent to, so a
press is only honoured from that chat: nobody can craft data that acts for another user's chat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

MAX_BYTES = 64
"""Telegram's limit for callback_data."""
SIGNATURE_CHARS = 16
"""96 bits of HMAC-SHA256, base64url."""


class CallbackError(ValueError):
    """The button's data would not fit, or uses the separator in a field."""


def callback_key(bot_token: str) -> bytes:
    """The signing key for one bot (changes when the token is rotated: old buttons expire)."""
    return hashlib.sha256(b"sns-telegram callback v1\x00" + bot_token.encode()).digest()


def _signature(key: bytes, chat_id: int, action: str, argument: str) -> str:
    digest = hmac.new(key, f"{chat_id}:{action}:{argument}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:SIGNATURE_CHARS]


def sign(key: bytes, chat_id: int, action: str, argument: str = "") -> str:
    """The callback_data for `action` with `argument`, valid only when pressed in `chat_id`."""
    if ":" in action or ":" in argument:
        raise CallbackError("action and argument must not contain ':'")
    data = f"{action}:{argument}:{_signature(key, chat_id, action, argument)}"
    if len(data.encode()) > MAX_BYTES:
        raise CallbackError(f"callback data is {len(data.encode())} bytes, more than {MAX_BYTES}")
    return data


def verify(key: bytes, chat_id: int, data: str | None) -> tuple[str, str] | None:
    """(action, argument) when `data` was signed for `chat_id` with `key`; None otherwise."""
    if not data or len(data.encode()) > MAX_BYTES:
        return None
    parts = data.split(":")
    if len(parts) != 3:
        return None
    action, argument, signature = parts
    expected = _signature(key, chat_id, action, argument)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    return action, argument


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
