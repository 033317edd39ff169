"""The ground of every linker use case: its ports, and the steps several use cases share.

`LinkService` (service.py) is one object made of the use cases of `linking`, `chats` and `retry`
over these ports; each of those modules adds its methods to this base.
"""

from __future__ import annotations

import logging
from dataclasses import KW_ONLY, dataclass

from prometheus_client import Counter

from services.common.chat_ids import ChatIdCipher
from services.common.logging import mask_chat_id
from services.linker.ports import (
    Clock,
    EventSink,
    LinkStore,
    MessageSender,
    SendRefused,
    StoredChat,
)
from shared.contract import EventType, TelegramLinkData, new_event
from shared.models import utcnow
from shared.publisher import PublishError

log = logging.getLogger("services.linker.service")
"""The use cases' one logger (its name is in every log line; it was one module's)."""

PUBLISH_FAILURES = Counter(
    "linker_event_publish_failures_total", "telegram.* events the broker did not confirm", ["type"]
)


def chat_type_for(chat_id: int, given: str | None = None) -> str:
    """The chat's type: as given, else inferred (users have positive ids, groups negative)."""
    if given:
        return given
    return "private" if chat_id > 0 else "group"


@dataclass(eq=False)
class UseCase:
    """The ports (`LinkService` is built with them) and the shared steps."""

    store: LinkStore
    cipher: ChatIdCipher
    sender: MessageSender
    events: EventSink
    _: KW_ONLY
    clock: Clock = utcnow

    def _stored_chat(
        self, chat_id: int, chat_type: str | None, thread: int | None = None
    ) -> StoredChat:
        return StoredChat(
            stored=self.cipher.encrypt(chat_id),
            lookup=self.cipher.lookup(chat_id)[0],
            chat_type=chat_type_for(chat_id, chat_type),
            thread=thread,
        )

    async def _deliver(self, chat_id: int, text: str) -> int:
        """Send `text`, following a group's migration once; returns the chat that got it."""
        try:
            await self.sender.send_text(chat_id, text)
            return chat_id
        except SendRefused as exc:
            if exc.migrate_to is None:
                raise
            log.info("chat migrated while sending", extra={"chat": mask_chat_id(exc.migrate_to)})
            await self.sender.send_text(exc.migrate_to, text)
            return exc.migrate_to

    async def _announce(self, type: EventType, user_id: str, chat_type: str | None) -> None:
        # The change is committed; a lost announcement cannot undo it, so it is logged and
        # counted rather than failing the user's request (an outbox would make it reliable).
        event = new_event(type, user_id, TelegramLinkData(chat_type=chat_type))
        try:
            await self.events.publish(event, mandatory=False)
        except PublishError as exc:
            PUBLISH_FAILURES.labels(type.value).inc()
            log.error("event not published: %s", exc, extra={"event_id": str(event.event_id)})
