"""The linker's ports: what its use cases need from the outside, given to `LinkService`.

`LinkStore` is PostgreSQL in production (`services.linker.store.PostgresLinkStore`),
`MessageSender` the bot (`services.linker.bot.BotSender`), `EventSink` the broker
(`shared.publisher.EventPublisher`), the clock `shared.models.utcnow`. The unit tests give
in-memory fakes of each (`tests/linker/fakes.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.linker.preferences import Preferences, PreferencesChange
from services.linker.ratelimit import RateDecision
from services.linker.tokens import TokenProblem
from shared.contract import Event
from shared.models import Activity, TelegramLink

Clock = Callable[[], datetime]
BotUsername = Callable[[], Awaitable[str]]
"""Returns the bot's username; raises `BotUnavailable` when it cannot be learned."""


class SendRefused(Exception):
    """Telegram did not accept a message; `reason` is safe to show to the user."""

    def __init__(
        self,
        reason: str,
        *,
        blocked: bool = False,
        migrate_to: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.blocked = blocked
        self.migrate_to = migrate_to
        self.retry_after = retry_after


class MessageSender(Protocol):
    """Sends a text to a chat; raises `SendRefused` when Telegram does not accept it."""

    async def send_text(self, chat_id: int, text: str) -> None: ...


class EventSink(Protocol):
    """Publishes a contract event (`shared.publisher.EventPublisher` is one)."""

    async def publish(
        self, event: Event, *, mandatory: bool = True, headers: dict[str, Any] | None = None
    ) -> None: ...


@dataclass(frozen=True)
class Press:
    """A press of a notification's button, as the delivery log keeps it."""

    action: str
    outcome: str
    at: datetime
    message_id: int | None
    """The pressed message: its notification is found by it when `event_id` is None."""
    event_id: uuid.UUID | None = None


@dataclass(frozen=True)
class StoredChat:
    """A chat id as stored: ciphertext (or plain id) and the lookup digest to save with it."""

    stored: str
    lookup: str
    chat_type: str | None
    thread: int | None = None
    """The forum topic a link to this chat goes to (`message_thread_id`); None: the chat."""


@dataclass(frozen=True)
class Redemption:
    """What redeeming a token did: the token's user, and the problem if it was refused."""

    user_id: str | None
    problem: TokenProblem | None


class LinkStore(Protocol):
    """Link tokens, links and their preferences, rate-limit state; the failed posts of Retry.

    Each method is one transaction. Chats arrive already encrypted (`StoredChat`) with their
    lookup digests; a chat is found by any of its digests (`lookups`, one per key).
    """

    async def issue_token(
        self, user_id: str, token_hash: str, now: datetime, expires_at: datetime
    ) -> None:
        """Store a new token for `user_id`, revoking the user's earlier unused ones."""

    async def redeem(
        self, token_hash: str, chat: StoredChat, now: datetime, user_id: str | None = None
    ) -> Redemption:
        """Consume the token and link its user to `chat`, in one transaction; or say why not."""

    async def claim(self, token_hash: str, now: datetime, user_id: str | None = None) -> Redemption:
        """Mark the token used at `now` if it can be redeemed (by `user_id`, when given); of any
        number of concurrent claims of one token, one wins and the others see it used."""

    async def release(self, token_hash: str, claimed_at: datetime) -> bool:
        """Undo the claim made at `claimed_at` (nothing was linked): the token works again."""

    async def link(self, user_id: str, chat: StoredChat, now: datetime) -> None:
        """Link `user_id` to `chat` (enabled), replacing the user's earlier chat."""

    async def get_link(self, user_id: str) -> TelegramLink | None:
        """The user's link row (linked or not), or None."""

    async def links_for_chat(self, lookups: list[str]) -> list[TelegramLink]:
        """Every link to the chat with one of these lookup digests, by user id."""

    async def unlink(self, user_id: str, now: datetime) -> bool:
        """Forget the user's chat and disable notifications; True if there was a chat."""

    async def unlink_chat(self, lookups: list[str], now: datetime) -> list[str]:
        """Unlink every user linked to this chat; returns their ids."""

    async def set_enabled_for_chat(
        self, lookups: list[str], enabled: bool, now: datetime
    ) -> list[str]:
        """Pause or resume every link to this chat that is not already so; returns the user ids."""

    async def disable(self, user_id: str, linked_before: datetime, now: datetime) -> bool:
        """Pause the user's link if it existed at `linked_before`; True if it changed."""

    async def move_chat(
        self, user_id: str, chat: StoredChat, linked_before: datetime, now: datetime
    ) -> bool:
        """Point the user's link, a basic group's made by `linked_before`, at a new chat id."""

    async def move_chat_by_lookup(
        self, lookups: list[str], chat: StoredChat, now: datetime
    ) -> list[str]:
        """Point every link to the old chat, a basic group, at the new one; returns the user ids."""

    async def change_preferences(
        self, user_id: str, change: PreferencesChange, now: datetime
    ) -> Preferences | None:
        """Apply `change` to a linked user's preferences; None when the user has no chat."""

    async def change_chat_preferences(
        self, lookups: list[str], change: PreferencesChange, now: datetime
    ) -> list[Preferences]:
        """Apply `change` to every link to this chat, in user id order."""

    async def failed_post(self, event_id: uuid.UUID, lookups: list[str]) -> Activity | None:
        """The `post_failure` activity with this id, if it is of a user linked to this chat."""

    async def take_rate_slot(
        self, key: str, now: datetime, *, limit: int, period: timedelta
    ) -> RateDecision:
        """One request against the limit `key` (shared by every replica)."""

    async def record_press(self, press: Press, lookups: list[str]) -> None:
        """Note a press of a notification's button in this chat, for the delivery log."""
