"""`LinkService`: every use case of the linker in one object, and those of a user's own link.

The HTTP API, the bot's handlers and the event consumer all call it; it talks to the outside
only through its ports (`ports.py`: `LinkStore`, `MessageSender`, `EventSink`, a clock), all
given to it. Its use cases live by purpose: linking (`linking.py`), a chat's links (`chats.py`),
Retry (`retry.py`), and here a user's link (status, test message, unlink, preferences); what
they refuse with is `errors.py`.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter

from services.linker import texts
from services.linker.chats import Chats
from services.linker.errors import (
    NOT_LINKED_MESSAGE,
    NoActiveLink,
    NotLinked,
    RateLimited,
    TelegramRefused,
)
from services.linker.linking import Linking
from services.linker.ports import (
    BotUsername,
    SendRefused,
)
from services.linker.preferences import Preferences, PreferencesChange
from services.linker.retry import Retries
from services.linker.usecase import log
from shared.contract import EventType

TEST_MESSAGES = Counter("linker_test_messages_total", "Test messages requested", ["outcome"])

PAUSED_MESSAGE = (
    "Telegram notifications are paused (the bot was blocked or removed from the chat). Send "
    "/start to the bot, or link again with /link-account."
)


@dataclass(frozen=True)
class LinkStatus:
    """A user's link as the status endpoint shows it."""

    linked: bool
    enabled: bool = False
    chat_id: int | None = None
    linked_at: datetime | None = None


@dataclass(eq=False)
class LinkService(Linking, Chats, Retries):
    """Every linking use case; one instance per process, shared by API, bot and consumer.

    Built with the ports (`UseCase`: store, cipher, sender, events, and the clock by keyword)
    and the bot's username; the limits by keyword."""

    bot_username: BotUsername
    _: KW_ONLY
    token_ttl: timedelta = timedelta(minutes=15)
    test_messages_per_minute: int = 3

    # ------------------------------------------------------------- the user's link
    async def status(self, user_id: str) -> LinkStatus:
        """The user's link: linked or not, enabled or paused, the chat and when."""
        link = await self.store.get_link(user_id)
        if link is None or link.chat_id is None:
            return LinkStatus(linked=False)
        return LinkStatus(
            linked=True,
            enabled=link.enabled,
            chat_id=self.cipher.decrypt(link.chat_id),
            linked_at=link.linked_at,
        )

    async def send_test_message(self, user_id: str) -> None:
        """Send the test message to the user's chat (in the link's language); raise if it was
        not accepted (`NoActiveLink`, `RateLimited`, `TelegramRefused`)."""
        link = await self.store.get_link(user_id)
        if link is None or link.chat_id is None:
            TEST_MESSAGES.labels("not_linked").inc()
            raise NoActiveLink(NOT_LINKED_MESSAGE)
        if not link.enabled:
            TEST_MESSAGES.labels("paused").inc()
            raise NoActiveLink(PAUSED_MESSAGE)
        now = self.clock()
        decision = await self.store.take_rate_slot(
            f"test_message:{user_id}",
            now,
            limit=self.test_messages_per_minute,
            period=timedelta(minutes=1),
        )
        if not decision.allowed:
            TEST_MESSAGES.labels("rate_limited").inc()
            raise RateLimited(
                f"at most {self.test_messages_per_minute} test messages per minute",
                decision.retry_after,
            )
        chat_id = self.cipher.decrypt(link.chat_id)
        try:
            delivered_to = await self._deliver(chat_id, texts.test_message(link.language))
        except SendRefused as exc:
            TEST_MESSAGES.labels("refused").inc()
            if exc.blocked:
                # Telegram's 403 is final for this chat: stop notifying it until /start.
                await self.store.disable(user_id, now, self.clock())
            raise TelegramRefused(exc.reason, exc.retry_after) from None
        if delivered_to != chat_id:
            await self.store.move_chat(
                user_id, self._stored_chat(delivered_to, "supergroup"), now, self.clock()
            )
        TEST_MESSAGES.labels("sent").inc()

    async def unlink(self, user_id: str) -> bool:
        """Remove the user's chat and disable notifications; True if there was one."""
        link = await self.store.get_link(user_id)
        removed = await self.store.unlink(user_id, self.clock())
        if removed:
            log.info("telegram unlinked", extra={"user_id": user_id, "via": "api"})
            await self._announce(
                EventType.TELEGRAM_UNLINKED, user_id, link.chat_type if link else None
            )
        return removed

    async def preferences(self, user_id: str) -> Preferences:
        """The linked user's notification preferences; raises `NotLinked`."""
        link = await self.store.get_link(user_id)
        if link is None or link.chat_id is None:
            raise NotLinked(NOT_LINKED_MESSAGE)
        return Preferences.of(link)

    async def change_preferences(self, user_id: str, change: PreferencesChange) -> Preferences:
        """Apply `change` to the linked user's preferences; raises `NotLinked`."""
        changed = await self.store.change_preferences(user_id, change, self.clock())
        if changed is None:
            raise NotLinked(NOT_LINKED_MESSAGE)
        log.info("preferences changed", extra={"user_id": user_id})
        return changed
