"""In-memory fakes of the linker's ports (`services/linker/ports.py`), for unit tests of the use
cases without PostgreSQL, RabbitMQ or Telegram.

Each fake keeps the rule of the real adapter it stands in for (the token check, GCRA, which
links a change touches) by calling the same pure core, and records what happened: every call
goes into one shared `journal` in order, so a test can say "claimed, then confirmed, then
linked". The clock is `tests.linker.helpers.FakeClock`. What only a real server shows
(concurrency, transactions, SQL) stays with the real-server tests.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.common.chat_ids import ChatIdCipher
from services.linker.errors import BotUnavailable
from services.linker.linking import ChatOutcome
from services.linker.ports import Press, Redemption, SendRefused, StoredChat
from services.linker.preferences import Preferences, PreferencesChange
from services.linker.ratelimit import RateDecision, gcra
from services.linker.service import LinkService
from services.linker.tokens import TokenState, check_token
from shared.contract import Event, EventType
from shared.models import Activity, LinkToken, TelegramLink
from shared.publisher import PublishError
from tests.linker.helpers import FakeClock

USER = "user-1"
CHAT = 7910169750
GROUP = -4012345678
SUPERGROUP = -1001234567890
"""Sample ids: a platform user, a private chat, a basic group, a supergroup."""

Journal = list[tuple[Any, ...]]
"""What the fakes were asked, in order: `("store.claim", token_hash)`, `("send", chat_id)`..."""

SPENT_TOKENS_KEPT_FOR = timedelta(days=1)


class FakeLinkStore:
    """`LinkStore` in dictionaries, with the PostgreSQL store's rules."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.tokens: dict[str, LinkToken] = {}
        self.links: dict[str, TelegramLink] = {}
        self.rate_limits: dict[str, datetime] = {}
        self.activity: dict[uuid.UUID, Activity] = {}
        self.presses: list[Press] = []

    # -- tokens ------------------------------------------------------------------------------
    async def issue_token(
        self, user_id: str, token_hash: str, now: datetime, expires_at: datetime
    ) -> None:
        self.journal.append(("store.issue_token", user_id))
        for hashed, row in list(self.tokens.items()):
            if row.user_id != user_id:
                continue
            if row.used_at is None and row.revoked_at is None:
                row.revoked_at = now
            if row.expires_at < now - SPENT_TOKENS_KEPT_FOR:
                del self.tokens[hashed]
        self.tokens[token_hash] = LinkToken(
            token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
        )

    async def redeem(
        self, token_hash: str, chat: StoredChat, now: datetime, user_id: str | None = None
    ) -> Redemption:
        self.journal.append(("store.redeem", token_hash))
        claimed = self._claim(token_hash, now, user_id)
        if claimed.problem is None and claimed.user_id is not None:
            self._link(claimed.user_id, chat, now)
        return claimed

    async def claim(self, token_hash: str, now: datetime, user_id: str | None = None) -> Redemption:
        self.journal.append(("store.claim", token_hash))
        return self._claim(token_hash, now, user_id)

    async def release(self, token_hash: str, claimed_at: datetime) -> bool:
        self.journal.append(("store.release", token_hash))
        row = self.tokens.get(token_hash)
        if row is None or row.used_at != claimed_at:
            return False
        row.used_at = None
        return True

    def _claim(self, token_hash: str, now: datetime, user_id: str | None) -> Redemption:
        row = self.tokens.get(token_hash)
        state = None
        if row is not None:
            state = TokenState(row.user_id, row.expires_at, row.used_at, row.revoked_at)
        problem = check_token(state, now, user_id)
        if problem is not None or row is None:
            return Redemption(row.user_id if row is not None else None, problem)
        row.used_at = now
        return Redemption(row.user_id, None)

    # -- links -------------------------------------------------------------------------------
    async def link(self, user_id: str, chat: StoredChat, now: datetime) -> None:
        self.journal.append(("store.link", user_id))
        self._link(user_id, chat, now)

    def _link(self, user_id: str, chat: StoredChat, now: datetime) -> None:
        row = self.links.setdefault(user_id, TelegramLink(user_id=user_id))
        row.chat_id, row.chat_lookup, row.chat_type = chat.stored, chat.lookup, chat.chat_type
        row.message_thread_id = chat.thread
        row.enabled, row.linked_at, row.updated_at = True, now, now

    async def get_link(self, user_id: str) -> TelegramLink | None:
        row = self.links.get(user_id)
        return row.model_copy(deep=True) if row is not None else None  # as read, detached

    async def links_for_chat(self, lookups: list[str]) -> list[TelegramLink]:
        return [row.model_copy(deep=True) for row in self._of_chat(lookups)]

    def _of_chat(self, lookups: list[str]) -> list[TelegramLink]:
        return sorted(
            (row for row in self.links.values() if row.chat_lookup in lookups),
            key=lambda row: row.user_id,
        )

    async def unlink(self, user_id: str, now: datetime) -> bool:
        self.journal.append(("store.unlink", user_id))
        row = self.links.get(user_id)
        if row is None or row.chat_id is None:
            return False
        _unlink(row, now)
        return True

    async def unlink_chat(self, lookups: list[str], now: datetime) -> list[str]:
        self.journal.append(("store.unlink_chat",))
        rows = self._of_chat(lookups)
        for row in rows:
            _unlink(row, now)
        return [row.user_id for row in rows]

    async def set_enabled_for_chat(
        self, lookups: list[str], enabled: bool, now: datetime
    ) -> list[str]:
        self.journal.append(("store.set_enabled_for_chat", enabled))
        rows = [row for row in self._of_chat(lookups) if row.enabled is not enabled]
        for row in rows:
            row.enabled, row.updated_at = enabled, now
        return [row.user_id for row in rows]

    async def disable(self, user_id: str, linked_before: datetime, now: datetime) -> bool:
        self.journal.append(("store.disable", user_id))
        row = self.links.get(user_id)
        if row is None or not row.enabled or not _linked_by(row, linked_before):
            return False
        row.enabled, row.updated_at = False, now
        return True

    async def move_chat(
        self, user_id: str, chat: StoredChat, linked_before: datetime, now: datetime
    ) -> bool:
        self.journal.append(("store.move_chat", user_id))
        row = self.links.get(user_id)
        if row is None or row.chat_id is None or row.chat_type != "group":
            return False
        if not _linked_by(row, linked_before):
            return False
        _move(row, chat, now)
        return True

    async def move_chat_by_lookup(
        self, lookups: list[str], chat: StoredChat, now: datetime
    ) -> list[str]:
        self.journal.append(("store.move_chat_by_lookup",))
        rows = [row for row in self._of_chat(lookups) if row.chat_type == "group"]
        for row in rows:
            _move(row, chat, now)
        return [row.user_id for row in rows]

    # -- preferences -------------------------------------------------------------------------
    async def change_preferences(
        self, user_id: str, change: PreferencesChange, now: datetime
    ) -> Preferences | None:
        self.journal.append(("store.change_preferences", user_id))
        row = self.links.get(user_id)
        if row is None or row.chat_id is None:
            return None
        return _change(row, change, now)

    async def change_chat_preferences(
        self, lookups: list[str], change: PreferencesChange, now: datetime
    ) -> list[Preferences]:
        self.journal.append(("store.change_chat_preferences",))
        return [_change(row, change, now) for row in self._of_chat(lookups)]

    # -- Retry and rate limits ---------------------------------------------------------------
    async def failed_post(self, event_id: uuid.UUID, lookups: list[str]) -> Activity | None:
        found = self.activity.get(event_id)
        if found is None or found.type != EventType.POST_FAILURE.value:
            return None
        link = self.links.get(found.user_id)
        return found if link is not None and link.chat_lookup in lookups else None

    async def record_press(self, press: Press, lookups: list[str]) -> None:
        self.journal.append(("store.record_press", press.action, press.outcome))
        self.presses.append(press)

    async def take_rate_slot(
        self, key: str, now: datetime, *, limit: int, period: timedelta
    ) -> RateDecision:
        self.journal.append(("store.take_rate_slot", key))
        tat = self.rate_limits.setdefault(key, now)
        decision = gcra(tat, now, limit=limit, period=period)
        if decision.allowed:
            self.rate_limits[key] = decision.tat
        return decision


def _linked_by(row: TelegramLink, moment: datetime) -> bool:
    return row.linked_at is not None and row.linked_at <= moment


def _unlink(row: TelegramLink, now: datetime) -> None:
    row.chat_id = row.chat_lookup = row.chat_type = None
    row.enabled, row.linked_at, row.updated_at = False, None, now


def _move(row: TelegramLink, chat: StoredChat, now: datetime) -> None:
    row.chat_id, row.chat_lookup, row.chat_type = chat.stored, chat.lookup, chat.chat_type
    row.updated_at = now


def _change(row: TelegramLink, change: PreferencesChange, now: datetime) -> Preferences:
    changed = change(Preferences.of(row))
    for column, value in changed.columns().items():
        setattr(row, column, value)
    row.updated_at = now
    return changed


@dataclass
class FakeSender:
    """`MessageSender`: keeps what was sent; `refuse[chat_id]` is raised for that chat; while
    `gate` is set and not open, a send waits for it (so a test can cancel it mid-send)."""

    journal: Journal
    sent: list[tuple[int, str]] = field(default_factory=list)
    refuse: dict[int, SendRefused] = field(default_factory=dict)
    gate: asyncio.Event | None = None

    async def send_text(self, chat_id: int, text: str) -> None:
        self.journal.append(("send", chat_id))
        if self.gate is not None:
            await self.gate.wait()
        if chat_id in self.refuse:
            raise self.refuse[chat_id]
        self.sent.append((chat_id, text))


@dataclass
class FakeEventSink:
    """`EventSink`: keeps what was published and with which `mandatory`; while `refusing`, each
    publish raises `PublishError` as an unconfirmed publish does."""

    journal: Journal
    published: list[tuple[Event, bool]] = field(default_factory=list)
    refusing: bool = False

    async def publish(
        self, event: Event, *, mandatory: bool = True, headers: dict[str, Any] | None = None
    ) -> None:
        self.journal.append(("publish", event.type.value))
        if self.refusing:
            raise PublishError("the broker did not confirm the event")
        self.published.append((event, mandatory))

    def events(self, type_: EventType | None = None) -> list[Event]:
        """The published events (of one type)."""
        return [e for e, _ in self.published if type_ is None or e.type is type_]


@dataclass
class FakeBotName:
    """The bot's username source: `name`, or `BotUnavailable` while it is None."""

    name: str | None = "fakebot"

    async def __call__(self) -> str:
        if self.name is None:
            raise BotUnavailable("the bot's username is unknown; try again shortly")
        return self.name


@dataclass
class Ports:
    """A `LinkService` over fakes, and the fakes to drive and read."""

    links: LinkService
    store: FakeLinkStore
    sender: FakeSender
    events: FakeEventSink
    clock: FakeClock
    cipher: ChatIdCipher
    bot_name: FakeBotName
    journal: Journal


def fake_service(
    keys: list[str] | None = None, *, token_ttl: timedelta = timedelta(minutes=15), **kw: Any
) -> Ports:
    """A `LinkService` over fresh fakes (chat ids encrypted under `keys`, plain without)."""
    journal: Journal = []
    store, sender, events = FakeLinkStore(journal), FakeSender(journal), FakeEventSink(journal)
    clock, cipher, bot_name = FakeClock(), ChatIdCipher(keys or []), FakeBotName()
    links = LinkService(
        store, cipher, sender, events, bot_name, token_ttl=token_ttl, clock=clock, **kw
    )
    return Ports(links, store, sender, events, clock, cipher, bot_name, journal)


async def link_by_start(
    ports: Ports, user: str = USER, chat: int = CHAT, kind: str | None = None
) -> str:
    """Link `user` to `chat` the way a person does (a token, then `/start TOKEN`); the token."""
    issued = await ports.links.issue_link(user)
    outcome, _ = await ports.links.redeem_in_chat(issued.token, chat, kind)
    assert outcome is ChatOutcome.LINKED
    return issued.token
