"""The stand-in's state: chats, updates, faults, limits, counters, and running a method on it.

Everything runs in one event loop, so no locks are needed: a change calls `notify()`, and long
polls, the webhook pusher and test waits wake up. What a bot calls is in `methods.py` (the
`METHODS` table) and `updates.py`; what a user does in `users.py`; the pieces the state holds
in `model.py` (chats, messages, presses), `limits.py`, `faults.py` and `members.py`. No HTTP here.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, TypedDict

import aiohttp

from services.standin import faults, updates
from services.standin.faults import Fault
from services.standin.limits import Limits, RateLimiter
from services.standin.members import Members
from services.standin.methods import CANONICAL_METHODS, METHODS
from services.standin.model import CallbackRecord, Chat, StoredMessage
from services.standin.wire import ApiError

__all__ = [
    "DEFAULT_BOT_FIRST_NAME",
    "DEFAULT_BOT_USERNAME",
    "CallbackRecord",
    "Fault",
    "Limits",
    "Settings",
    "StandInState",
]

DEFAULT_BOT_USERNAME = "piwpiwtelegrambot"
DEFAULT_BOT_FIRST_NAME = "PiwPiw"
DEFAULT_BOT_ID = 123456
_CHAT_STATES = ("ok", "blocked", "deactivated", "not_found", "migrated")


class Settings(TypedDict, total=False):
    """What a stand-in is started with: `StandInState`'s keywords, which `StandIn` passes on."""

    bot_username: str
    bot_first_name: str
    limits: Limits | Mapping[str, Any] | bool | None
    track_early_retries: bool
    early_retry_grace: float
    strict_html_entities: bool
    webhook_retries: int
    webhook_timeout: float


class StandInState:
    """All stand-in state: chats, updates, faults, limits, callbacks, counters."""

    def __init__(
        self,
        *,
        bot_username: str = DEFAULT_BOT_USERNAME,
        bot_first_name: str = DEFAULT_BOT_FIRST_NAME,
        limits: Limits | Mapping[str, Any] | bool | None = None,
        track_early_retries: bool = True,
        early_retry_grace: float = 0.1,
        strict_html_entities: bool = True,
        webhook_retries: int = 5,
        webhook_timeout: float = 10.0,
    ) -> None:
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.initial_limits = Limits.coerce(limits)
        self.track_early_retries = track_early_retries
        self.early_retry_grace = early_retry_grace
        self.strict_html_entities = strict_html_entities
        self.webhook_retries = webhook_retries
        self.webhook_timeout = webhook_timeout
        # Counters that survive reset(), so a long-lived client never sees ids repeat.
        self.update_ids = itertools.count(1)  # users.py takes them
        self.callback_ids = itertools.count(1)
        self._seq = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._bots: dict[str, dict[str, Any]] = {}
        self.webhook_task: asyncio.Task[None] | None = None  # the pusher (updates.py)
        self.webhook_http: aiohttp.ClientSession | None = None
        self.closing = False
        self.poll_generation = 0  # a new getUpdates call terminates the one waiting
        self.polls_waiting = 0  # getUpdates calls in progress
        self.reset()

    def reset(self) -> None:
        """Forget chats, messages, updates, faults, callbacks, webhook and counters."""
        self.chats: dict[int, Chat] = {}
        self.sent_log: list[StoredMessage] = []
        self.sent_base = self._seq
        self.updates: deque[dict[str, Any]] = deque()
        self.faults: list[Fault] = []
        self.callbacks: dict[str, CallbackRecord] = {}
        self.webhook: updates.Webhook | None = None
        self.allowed_updates: list[str] | None = None
        self.commands: list[Any] = []
        self.members = Members()
        self.limiter = RateLimiter(self.initial_limits, self.early_retry_grace)
        self.requests: dict[str, int] = {}
        self.errors: dict[int, int] = {}
        self.send_message_accepted = 0
        self.paid_broadcasts = 0
        self.user_messages = 0
        self.fault_hits = 0
        self.updates_total = 0
        self.webhook_delivered = 0
        self.webhook_failed_attempts = 0
        self.webhook_dropped = 0
        self.notify()

    async def close(self) -> None:
        """Stop: long polls return, the webhook pusher ends."""
        self.closing = True
        self.notify()
        await updates.stop(self)

    # ------------------------------------------------------------- waiting
    def notify(self) -> None:
        """Wake everything waiting for a change (long polls, webhook pusher, test waits)."""
        if not self._waiters:
            return
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_change(self, timeout: float | None) -> None:  # noqa: ASYNC109
        """Wait until notify() or until `timeout` seconds pass."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until predicate() is true (re-checked on every change); False on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closing:
                return False
            await self.wait_change(remaining)
        return True

    # ------------------------------------------------- what tests arrange
    def chat(self, chat_id: int, chat_type: str | None = None, title: str | None = None) -> Chat:
        """The chat with this id, created on first use."""
        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self.chats[chat_id] = Chat(chat_id, chat_type, title)
        else:
            if chat_type is not None:
                chat.type = chat_type
            if title is not None:
                chat.title = title
        return chat

    def set_chat_state(self, chat_id: int, state: str, migrate_to: int | None = None) -> Chat:
        """Make the chat answer as blocked, deactivated, not found, migrated or ok."""
        if migrate_to is not None and state in ("ok", "migrated"):
            state = "migrated"
        if state not in _CHAT_STATES:
            raise ValueError(f"state must be one of {_CHAT_STATES}")
        if state == "migrated" and migrate_to is None:
            raise ValueError("state 'migrated' needs migrate_to")
        chat = self.chat(chat_id)
        chat.state = state
        chat.migrate_to = migrate_to if state == "migrated" else None
        if migrate_to is not None:
            self.chat(migrate_to, "supergroup", chat.title)
        chat.version += 1
        self.notify()
        return chat

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """Give a user a status in a chat, as getChatMember will answer it."""
        self.members.set(chat_id, user_id, status)
        self.notify()

    @property
    def limits(self) -> Limits:
        """The rate limits in force."""
        return self.limiter.limits

    def set_limits(self, limits: Limits | Mapping[str, Any] | bool | None) -> Limits:
        """Replace the rate limits (None/False = off, True = Telegram's) and clear windows."""
        return self.limiter.set(limits)

    def add_fault(self, fault: Fault | Mapping[str, Any]) -> Fault:
        """Queue a fault; matching requests consume it in order."""
        item = Fault.coerce(fault)
        self.faults.append(item)
        return item

    def take_fault(self, method: str, chat_id: Any) -> Fault | None:
        """Consume one use of the first fault matching this call, if any."""
        fault = faults.take(self.faults, method, chat_id)
        if fault is not None:
            self.fault_hits += 1
        return fault

    def bot_user(self, token: str) -> dict[str, Any]:
        """The bot's User object for this token (id = the token's numeric prefix)."""
        user = self._bots.get(token)
        if user is None:
            prefix = token.split(":", 1)[0]
            bot_id = int(prefix) if prefix.isdigit() else DEFAULT_BOT_ID
            user = {
                "id": bot_id,
                "is_bot": True,
                "first_name": self.bot_first_name,
                "username": self.bot_username,
            }
            self._bots[token] = user
        return user

    @property
    def stats(self) -> dict[str, Any]:
        """Counters for tests and benchmarks."""
        return {
            "requests": dict(self.requests),
            "errors": {str(k): v for k, v in self.errors.items()},
            "send_message_accepted": self.send_message_accepted,
            "paid_broadcasts": self.paid_broadcasts,
            "user_messages": self.user_messages,
            "too_many_requests": self.limiter.too_many_requests,
            "early_retries": self.limiter.early_retries,
            "fault_hits": self.fault_hits,
            "faults_pending": sum(f.count for f in self.faults),
            "updates_pending": len(self.updates),
            "updates_total": self.updates_total,
            "polls_waiting": self.polls_waiting,
            "callbacks_pressed": len(self.callbacks),
            "callbacks_answered": sum(1 for c in self.callbacks.values() if c.answered),
            "webhook_delivered": self.webhook_delivered,
            "webhook_failed_attempts": self.webhook_failed_attempts,
            "webhook_dropped": self.webhook_dropped,
            "chats": len(self.chats),
            "bot_messages": len(self.sent_log),
            "next_seq": self._seq,
            "limits": asdict(self.limits),
        }

    # ----------------------------------------------------- messages, updates
    def store(self, msg: StoredMessage) -> StoredMessage:
        """Add a new message to its chat; a bot's gets the next sequence number of sent_log."""
        msg.chat.add(msg)
        if msg.direction == "bot":
            msg.seq = self._seq
            self._seq += 1
            self.sent_log.append(msg)
        self.notify()
        return msg

    def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates or the webhook."""
        self.updates.append(update)
        self.updates_total += 1
        self.notify()

    # ------------------------------------------------------------ API calls
    @staticmethod
    def canonical_method(name: str) -> str | None:
        """The method's name as in `METHODS` (names are case-insensitive), None if unknown."""
        return CANONICAL_METHODS.get(name.lower())

    async def call(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        """Run a Bot API method of `METHODS`; returns (HTTP status, JSON body) like Telegram."""
        try:
            result = METHODS[method](self, token, params)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as e:
            return self.error_answer(token, e)
        if isinstance(result, tuple):  # (result, description)
            return 200, {"ok": True, "result": result[0], "description": result[1]}
        return 200, {"ok": True, "result": result}

    def error_answer(self, token: str, error: ApiError) -> tuple[int, dict[str, Any]]:
        """Count an error answer (429s start a retry_after penalty) and build its body."""
        self.errors[error.code] = self.errors.get(error.code, 0) + 1
        if error.code == 429:
            self.limiter.answered_429()
        return error.code, error.body()
