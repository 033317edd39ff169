"""What the notifier tells the linker: signed `telegram.*` events on the internal exchange (a chat
refused for good, a group migrated, a forum topic gone); the linker changes its links (its
`events.py`), the notifier never writes the linker's table."""

from __future__ import annotations

import logging

from services.common.internal_events import InternalPublisher
from services.notifier.telegram import SendError
from shared.contract import (
    EventType,
    TelegramBlockedData,
    TelegramChatMigratedData,
    TelegramTopicClosedData,
    is_supergroup_id,
    new_event,
)

log = logging.getLogger("notifier")


class PublishedInternalEvents:
    """`InternalEvents` for the linker: signed, on the internal exchange, with confirms."""

    def __init__(self, publisher: InternalPublisher) -> None:
        self._publisher = publisher

    async def chat_gone(self, user_id: str, error: SendError) -> None:
        """Tell the linker Telegram refused the chat for good (403, chat not found)."""
        data = TelegramBlockedData(reason=error.description, error_code=error.error_code or 0)
        await self._publisher.publish(
            new_event(EventType.TELEGRAM_BLOCKED, user_id, data), mandatory=False
        )

    async def chat_migrated(self, user_id: str, new_chat_id: int) -> None:
        """Tell the linker the group became a supergroup with a new id."""
        if not is_supergroup_id(new_chat_id):  # not what Telegram says: nothing to tell
            log.warning("migration to a chat id that is not a supergroup's not announced")
            return
        data = TelegramChatMigratedData(new_chat_id=new_chat_id)
        await self._publisher.publish(
            new_event(EventType.TELEGRAM_CHAT_MIGRATED, user_id, data), mandatory=False
        )

    async def topic_closed(self, user_id: str, thread: int, error: SendError) -> None:
        """Tell the linker the link's forum topic is gone (its messages go to General now)."""
        data = TelegramTopicClosedData(
            message_thread_id=thread, reason=error.description, error_code=error.error_code or 0
        )
        await self._publisher.publish(
            new_event(EventType.TELEGRAM_TOPIC_CLOSED, user_id, data), mandatory=False
        )
