"""The linker's use cases: issue and redeem link tokens, report, test and remove links, change
notification preferences, and act on the buttons of notifications (retry a failed post).

The HTTP API, the bot's handlers and the event consumer all call this; it talks to the outside
only through its ports (`LinkStore`, `MessageSender`, `EventSink`, a clock), all given to it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from prometheus_client import Counter

from services.common.logging import mask_chat_id
from services.linker import menu, texts
from services.linker.crypto import ChatIdCipher
from services.linker.preferences import Preferences, PreferencesChange
from services.linker.store import LinkStore, StoredChat
from services.linker.tokens import (
    TokenProblem,
    hash_token,
    is_well_formed,
    linking_url,
    new_token,
)
from shared.contract import (
    Event,
    EventType,
    InvalidEvent,
    TelegramLinkData,
    is_supergroup_id,
    new_event,
)
from shared.models import Activity, TelegramLink, utcnow
from shared.publisher import PublishError

log = logging.getLogger(__name__)

LINKS = Counter("linker_link_attempts_total", "Link token redemptions", ["via", "outcome"])
TEST_MESSAGES = Counter("linker_test_messages_total", "Test messages requested", ["outcome"])
PUBLISH_FAILURES = Counter(
    "linker_event_publish_failures_total", "telegram.* events the broker did not confirm", ["type"]
)
RETRIES = Counter("linker_retry_requests_total", "Retry button presses", ["outcome"])

LINK_TOKENS_PER_MINUTE = 10
"""Each request stores a token; the limit bounds what one account can make the table hold."""

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


class LinkerError(Exception):
    """A use case refused; `code` is stable, the message says why."""

    code = "error"


class TokenRefused(LinkerError):
    """A link token cannot be redeemed."""

    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(TOKEN_MESSAGES[problem])
        self.problem = problem
        self.code = problem.value


class NotLinked(LinkerError):
    """The user has no active link."""

    code = "not_linked"


class RateLimited(LinkerError):
    """Too many requests; retry after `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TelegramRefused(LinkerError):
    """Telegram did not accept the message."""

    code = "telegram_error"

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"Telegram refused the message: {reason}")
        self.retry_after = retry_after


class BotUnavailable(LinkerError):
    """The bot's username is unknown and Telegram could not be asked."""

    code = "telegram_unavailable"


class RetryRefused(LinkerError):
    """No failed post of a user linked to this chat has that event id."""

    code = "retry_unknown_event"


class RetryNotSent(LinkerError):
    """The retry request could not be published; the user may press again."""

    code = "retry_not_published"


TOKEN_MESSAGES = {
    TokenProblem.NOT_FOUND: "link token not found",
    TokenProblem.WRONG_USER: "link token belongs to another user",
    TokenProblem.USED: "link token has already been used",
    TokenProblem.REVOKED: "link token was replaced by a newer one",
    TokenProblem.EXPIRED: "link token has expired",
}


@dataclass(frozen=True)
class IssuedLink:
    """A fresh link token and the deep link that carries it."""

    token: str
    linking_url: str
    bot_username: str
    expires_at: datetime


@dataclass(frozen=True)
class LinkStatus:
    """A user's link as the status endpoint shows it."""

    linked: bool
    enabled: bool = False
    chat_id: int | None = None
    linked_at: datetime | None = None


class ChatOutcome(StrEnum):
    """What `/start TOKEN` did in a chat."""

    LINKED = "linked"
    ALREADY_LINKED = "already_linked"
    REFUSED = "refused"


def retry_event_id(press_id: str) -> uuid.UUID:
    """The id of the retry request of one button press (the same for a redelivered press)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "sns-telegram:retry:" + press_id)


def retry_event(activity: Activity, press_id: str, now: datetime) -> Event | None:
    """`post_retry_requested` with the failure's original data; None if that data is unusable."""
    details = activity.details
    original = details.get("data")
    if not isinstance(original, dict):
        # Recorded before the notifier kept the whole event: rebuild what the row has.
        original = {
            "platform": activity.platform,
            "error": details.get("error") or "",
            "post_id": details.get("post_id") or activity.post_id,
        }
    data = {**original, "original_event_id": str(activity.event_id)}
    try:
        return new_event(
            EventType.POST_RETRY_REQUESTED,
            activity.user_id,
            data,
            event_id=retry_event_id(press_id),
            occurred_at=now,
        )
    except InvalidEvent as exc:
        log.error("failed post %s cannot be retried: %s", activity.event_id, exc)
        return None


def chat_type_for(chat_id: int, given: str | None = None) -> str:
    """The chat's type: as given, else inferred (users have positive ids, groups negative)."""
    if given:
        return given
    return "private" if chat_id > 0 else "group"


class LinkService:
    """Every linking use case; one instance per process, shared by API, bot and consumer."""

    def __init__(
        self,
        store: LinkStore,
        cipher: ChatIdCipher,
        sender: MessageSender,
        events: EventSink,
        bot_username: BotUsername,
        *,
        token_ttl: timedelta = timedelta(minutes=15),
        test_messages_per_minute: int = 3,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.cipher = cipher
        self.sender = sender
        self.events = events
        self.bot_username = bot_username
        self.token_ttl = token_ttl
        self.test_messages_per_minute = test_messages_per_minute
        self.clock = clock

    # ---------------------------------------------------------------- tokens
    async def issue_link(self, user_id: str) -> IssuedLink:
        """A new single-use link token for `user_id` (earlier unused ones stop working)."""
        now = self.clock()
        decision = await self.store.take_rate_slot(
            f"link_token:{user_id}", now, limit=LINK_TOKENS_PER_MINUTE, period=timedelta(minutes=1)
        )
        if not decision.allowed:
            raise RateLimited(
                f"at most {LINK_TOKENS_PER_MINUTE} linking URLs per minute", decision.retry_after
            )
        username = await self.bot_username()  # raises BotUnavailable
        token = new_token()
        expires_at = now + self.token_ttl
        await self.store.issue_token(user_id, hash_token(token), now, expires_at)
        log.info("link token issued", extra={"user_id": user_id})
        return IssuedLink(token, linking_url(username, token), username, expires_at)

    async def redeem_in_chat(
        self, token: str, chat_id: int, chat_type: str | None
    ) -> tuple[ChatOutcome, TokenProblem | None]:
        """`/start TOKEN` in a chat: link the token's user to it, or say why not."""
        if not is_well_formed(token):
            LINKS.labels("bot", TokenProblem.NOT_FOUND.value).inc()
            return ChatOutcome.REFUSED, TokenProblem.NOT_FOUND
        chat = self._stored_chat(chat_id, chat_type)
        result = await self.store.redeem(hash_token(token), chat, self.clock())
        if result.problem is None and result.user_id is not None:
            LINKS.labels("bot", "linked").inc()
            await self._linked(result.user_id, chat_id, chat.chat_type)
            return ChatOutcome.LINKED, None
        LINKS.labels("bot", str(result.problem)).inc()
        if result.problem is TokenProblem.USED and result.user_id is not None:
            # Telegram may deliver the same /start twice; the second one is not an error.
            link = await self.store.get_link(result.user_id)
            if link is not None and link.chat_lookup in self.cipher.lookup(chat_id):
                return ChatOutcome.ALREADY_LINKED, None
        return ChatOutcome.REFUSED, result.problem

    async def verify_link(
        self, token: str, chat_id: int, chat_type: str | None = None, *, user_id: str | None = None
    ) -> str:
        """Redeem `token` for `chat_id` on behalf of a trusted bot that runs elsewhere; returns
        the token's user. With `user_id` (the caller's JWT) the token must be that user's.

        Claim, confirm, link: the token is claimed in one short transaction (of any number of
        concurrent calls, one wins; the others get `TokenRefused(USED)`), then the chat gets the
        confirmation, then the link is written. A chat Telegram refuses links nothing: the claim
        is released, so the token works again, and an earlier link stays as it was.
        """
        if not is_well_formed(token):
            raise TokenRefused(TokenProblem.NOT_FOUND)
        token_hash = hash_token(token)
        claimed_at = self.clock()
        claim = await self.store.claim(token_hash, claimed_at, user_id)
        if claim.problem is not None or claim.user_id is None:
            problem = claim.problem or TokenProblem.NOT_FOUND
            LINKS.labels("api", problem.value).inc()
            raise TokenRefused(problem)
        try:
            delivered_to = await self._deliver(chat_id, texts.LINKED)
        except SendRefused as exc:
            await self.store.release(token_hash, claimed_at)
            LINKS.labels("api", "telegram_refused").inc()
            raise TelegramRefused(exc.reason, exc.retry_after) from None
        except BaseException:
            # Cancelled or failed without an answer: the token must not stay spent unlinked.
            await asyncio.shield(self.store.release(token_hash, claimed_at))
            raise
        if delivered_to != chat_id:
            chat_id, chat_type = delivered_to, "supergroup"
        chat = self._stored_chat(chat_id, chat_type)
        await self.store.link(claim.user_id, chat, self.clock())
        LINKS.labels("api", "linked").inc()
        await self._linked(claim.user_id, chat_id, chat.chat_type)
        return claim.user_id

    # ------------------------------------------------------------- the user
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
        """Send the spec's test message to the user's chat; raise if it was not accepted."""
        link = await self.store.get_link(user_id)
        if link is None or link.chat_id is None:
            TEST_MESSAGES.labels("not_linked").inc()
            raise NotLinked("Telegram account not linked. Use /link-account endpoint to connect.")
        if not link.enabled:
            TEST_MESSAGES.labels("paused").inc()
            raise NotLinked(
                "Telegram notifications are paused (the bot was blocked or removed from the "
                "chat). Send /start to the bot, or link again with /link-account."
            )
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

    # ------------------------------------------------------------- the chat
    async def chat_links(self, chat_id: int) -> list[TelegramLink]:
        """The links to this chat (any number of platform users may share one group)."""
        return await self.store.links_for_chat(self.cipher.lookup(chat_id))

    async def stop_chat(self, chat_id: int) -> list[str]:
        """`/stop`: unlink every user linked to this chat; returns their ids."""
        links = await self.chat_links(chat_id)
        users = await self.store.unlink_chat(self.cipher.lookup(chat_id), self.clock())
        chat_types = {link.user_id: link.chat_type for link in links}
        for user_id in users:
            log.info("telegram unlinked", extra={"user_id": user_id, "via": "bot"})
            await self._announce(EventType.TELEGRAM_UNLINKED, user_id, chat_types.get(user_id))
        return users

    async def set_chat_enabled(self, chat_id: int, enabled: bool) -> list[str]:
        """Resume (`/start`) or pause (bot blocked or removed) every link to this chat."""
        users = await self.store.set_enabled_for_chat(
            self.cipher.lookup(chat_id), enabled, self.clock()
        )
        for user_id in users:
            log.info(
                "telegram link %s", "resumed" if enabled else "paused", extra={"user_id": user_id}
            )
        return users

    async def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> list[str]:
        """A group became a supergroup: move its links to the new id."""
        if not is_supergroup_id(new_chat_id):
            log.warning("migration to a chat id that is not a supergroup's ignored")
            return []
        chat = self._stored_chat(new_chat_id, "supergroup")
        return await self.store.move_chat_by_lookup(
            self.cipher.lookup(old_chat_id), chat, self.clock()
        )

    # ------------------------------------------------------- preferences
    async def preferences(self, user_id: str) -> Preferences:
        """The linked user's notification preferences; raises `NotLinked`."""
        link = await self.store.get_link(user_id)
        if link is None or link.chat_id is None:
            raise NotLinked("Telegram account not linked. Use /link-account endpoint to connect.")
        return Preferences.of(link)

    async def change_preferences(self, user_id: str, change: PreferencesChange) -> Preferences:
        """Apply `change` to the linked user's preferences; raises `NotLinked`."""
        changed = await self.store.change_preferences(user_id, change, self.clock())
        if changed is None:
            raise NotLinked("Telegram account not linked. Use /link-account endpoint to connect.")
        log.info("preferences changed", extra={"user_id": user_id})
        return changed

    async def chat_preferences(self, chat_id: int) -> Preferences | None:
        """The preferences shown in a chat: its first link's (by user id), None if not linked."""
        found = await self.chat_links(chat_id)
        return Preferences.of(found[0]) if found else None

    async def change_chat_preferences(
        self, chat_id: int, change: PreferencesChange
    ) -> Preferences | None:
        """Apply `change` to every link to this chat (the bot's settings are the chat's)."""
        changed = await self.store.change_chat_preferences(
            self.cipher.lookup(chat_id), change, self.clock()
        )
        return changed[0] if changed else None

    async def request_retry(self, chat_id: int, failure_id: uuid.UUID, press_id: str) -> str:
        """Publish `post_retry_requested` for a failed post shown in this chat; its platform.

        The event id comes from the press, so a redelivered press publishes the same event.
        Raises `RetryRefused` for another chat's or an unknown event, `RateLimited` past
        `menu.RETRIES_PER_POST` for this post or `menu.RETRIES_PER_USER` for its user in
        `menu.RETRY_PERIOD`, `RetryNotSent`.
        """
        activity = await self.store.failed_post(failure_id, self.cipher.lookup(chat_id))
        now = self.clock()
        event = retry_event(activity, press_id, now) if activity else None
        if event is None:
            RETRIES.labels("refused").inc()
            raise RetryRefused("no such failed post for this chat")
        for key, limit in (
            (f"retry_post:{failure_id}", menu.RETRIES_PER_POST),
            (f"retry_user:{event.user_id}", menu.RETRIES_PER_USER),
        ):
            decision = await self.store.take_rate_slot(
                key, now, limit=limit, period=menu.RETRY_PERIOD
            )
            if not decision.allowed:
                RETRIES.labels("rate_limited").inc()
                raise RateLimited("too many retry requests", decision.retry_after)
        try:
            await self.events.publish(event, mandatory=False)
        except PublishError as exc:
            RETRIES.labels("not_published").inc()
            log.error("retry request not published: %s", exc, extra={"user_id": event.user_id})
            raise RetryNotSent("the retry request could not be sent") from None
        RETRIES.labels("published").inc()
        log.info(
            "post retry requested",
            extra={"user_id": event.user_id, "event_id": str(event.event_id)},
        )
        return str(event.data["platform"])

    # ----------------------------------------------------- notifier's events
    async def on_blocked(self, user_id: str, occurred_at: datetime, reason: str) -> bool:
        """`telegram.blocked`: pause the user's link, unless it was made after the event."""
        changed = await self.store.disable(user_id, occurred_at, self.clock())
        log.info(
            "telegram link paused" if changed else "telegram.blocked changed nothing",
            extra={"user_id": user_id, "reason": reason},
        )
        return changed

    async def on_chat_migrated(self, user_id: str, occurred_at: datetime, new_chat_id: int) -> bool:
        """`telegram.chat_migrated`: store the new chat id, unless the link is newer (only a
        group's link moves, and only to a supergroup's id)."""
        if not is_supergroup_id(new_chat_id):
            log.warning("telegram.chat_migrated to a chat id that is not a supergroup's ignored")
            return False
        chat = self._stored_chat(new_chat_id, "supergroup")
        changed = await self.store.move_chat(user_id, chat, occurred_at, self.clock())
        log.info(
            "telegram chat migrated" if changed else "telegram.chat_migrated changed nothing",
            extra={"user_id": user_id, "chat": mask_chat_id(new_chat_id)},
        )
        return changed

    # -------------------------------------------------------------- helpers
    def _stored_chat(self, chat_id: int, chat_type: str | None) -> StoredChat:
        return StoredChat(
            stored=self.cipher.encrypt(chat_id),
            lookup=self.cipher.lookup(chat_id)[0],
            chat_type=chat_type_for(chat_id, chat_type),
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

    async def _linked(self, user_id: str, chat_id: int, chat_type: str | None) -> None:
        log.info("telegram linked", extra={"user_id": user_id, "chat": mask_chat_id(chat_id)})
        await self._announce(EventType.TELEGRAM_LINKED, user_id, chat_type)

    async def _announce(self, type: EventType, user_id: str, chat_type: str | None) -> None:
        # The change is committed; a lost announcement cannot undo it, so it is logged and
        # counted rather than failing the user's request (an outbox would make it reliable).
        event = new_event(type, user_id, TelegramLinkData(chat_type=chat_type))
        try:
            await self.events.publish(event, mandatory=False)
        except PublishError as exc:
            PUBLISH_FAILURES.labels(type.value).inc()
            log.error("event not published: %s", exc, extra={"event_id": str(event.event_id)})
