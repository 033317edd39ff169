"""Internal events between our own services (the notifier tells the linker `telegram.blocked` and
`telegram.chat_migrated`): published to an exchange of their own, and signed.

Other teams publish to `sns.events`; an event that pauses or moves someone's link must not come
from there. So internal events go to `sns.telegram.internal` (`INTERNAL_EXCHANGE`), which
RabbitMQ's permissions keep the platform's publishers from writing to (deploy/README.md,
"RabbitMQ permissions"), and each carries an HMAC-SHA256 of its body in the `x-sns-signature`
header, keyed from the bot token that only our services hold: the consumer drops (dead-letters)
anything unsigned or forged, even where the permissions were never set.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from shared.contract import INTERNAL_EXCHANGE, SIGNATURE_HEADER, Event
from shared.publisher import EventPublisher

_VERSION = "v1="


def internal_events_key(bot_token: str) -> bytes:
    """The signing key of internal events (changes with the bot token, like the buttons' key)."""
    return hashlib.sha256(b"sns-telegram internal events v1\x00" + bot_token.encode()).digest()


def signature(key: bytes, body: bytes) -> str:
    """The `x-sns-signature` value of a message body."""
    return _VERSION + hmac.new(key, body, hashlib.sha256).hexdigest()


def is_signed(key: bytes, body: bytes, headers: dict[str, Any] | None) -> bool:
    """True when `headers` carry the signature of `body` under `key` (constant-time compare)."""
    given = (headers or {}).get(SIGNATURE_HEADER)
    if isinstance(given, bytes):
        given = given.decode("ascii", "replace")
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), signature(key, body).encode())


class InternalPublisher:
    """Publishes signed internal events to `INTERNAL_EXCHANGE` (with confirms)."""

    def __init__(self, url: str, key: bytes) -> None:
        self._key = key
        self.publisher = EventPublisher(url, exchange=INTERNAL_EXCHANGE)

    async def connect(self) -> None:
        await self.publisher.connect()

    async def close(self) -> None:
        await self.publisher.close()

    @property
    def is_connected(self) -> bool:
        return self.publisher.is_connected

    async def publish(self, event: Event, *, mandatory: bool = False) -> None:
        """Publish `event` signed; raises `shared.publisher.PublishError` if not confirmed."""
        headers = {SIGNATURE_HEADER: signature(self._key, event.to_json())}
        await self.publisher.publish(event, mandatory=mandatory, headers=headers)
