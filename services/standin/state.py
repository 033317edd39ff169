"""In-memory state of the Telegram Bot API stand-in and its Bot API methods (no HTTP here).

Everything runs in one event loop, so no locks are needed. Hot path (sendMessage): no
logging, no O(n) scans; messages are kept as slotted objects.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import aiohttp

from services.standin.members import Members, chat_member
from services.standin.text import TextError, prepare_text, utf16_len

DEFAULT_BOT_USERNAME = "piwpiwtelegrambot"
PAID_BROADCAST_PER_SEC = 1000
"""Telegram's global limit for messages sent with allow_paid_broadcast."""
DEFAULT_BOT_FIRST_NAME = "PiwPiw"
DEFAULT_BOT_ID = 123456

_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Only sendMessage is rate limited and watched for early retries.
LIMITED_METHOD = "sendMessage"
_CHAT_STATES = ("ok", "blocked", "deactivated", "not_found", "migrated")
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_GONE = "Bad Request: query is too old and response timeout expired or query ID is invalid"
ANONYMOUS_SENDERS = {
    "group": {
        "id": 1087968824,
        "is_bot": True,
        "first_name": "Group",
        "username": "GroupAnonymousBot",
    },
    "channel": {
        "id": 136817688,
        "is_bot": True,
        "first_name": "Channel",
        "username": "Channel_Bot",
    },
}
"""The `from` of a message sent on behalf of the group itself, or of a channel."""


class ApiError(Exception):
    """An error answer of the Bot API (status code, description, optional parameters)."""

    def __init__(self, code: int, description: str, parameters: dict[str, int] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        """The JSON body Telegram sends for this error."""
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            out["parameters"] = self.parameters
        return out


@dataclass
class Limits:
    """Rate limits (None = off): at most N messages in any sliding window, measured on arrival."""

    global_per_sec: int | None = None
    per_chat_per_sec: int | None = None
    per_group_per_min: int | None = None
    slack: float = 0.02  # windows are this much shorter, to absorb loopback jitter

    @classmethod
    def telegram(cls) -> Limits:
        """Telegram's documented limits: 30/s per bot, 1/s per chat, 20/min per group."""
        return cls(global_per_sec=30, per_chat_per_sec=1, per_group_per_min=20)

    @classmethod
    def coerce(cls, value: Limits | Mapping[str, Any] | bool | None) -> Limits:
        """Build Limits from a Limits, a mapping, True (Telegram's) or None/False (off)."""
        if isinstance(value, Limits):
            return Limits(**asdict(value))
        if value is True:
            return cls.telegram()
        if not value:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown limit fields: {sorted(unknown)}")
        kw = {k: v for k, v in value.items() if k != "slack" or v is not None}
        return cls(**kw)

    @property
    def enabled(self) -> bool:
        """Whether any limit is on."""
        return bool(self.global_per_sec or self.per_chat_per_sec or self.per_group_per_min)


@dataclass
class Fault:
    """One injected failure, consumed by the next `count` matching requests."""

    method: str = "sendMessage"  # "*" matches every method
    chat_id: int | str | None = None
    count: int = 1
    error_code: int | None = None
    description: str | None = None
    retry_after: int | None = None
    migrate_to_chat_id: int | None = None
    delay: float = 0.0  # seconds to hang before answering
    deliver: bool = True  # for delay/close faults: store the message before hanging/closing
    close_connection: bool = False  # drop the TCP connection without answering
    result: Any = None  # answer {"ok": true, "result": <this>} (after the method ran, if deliver)
    raw_body: str | None = None  # answer this text (not JSON) with error_code (default 502)

    @classmethod
    def coerce(cls, value: Fault | Mapping[str, Any]) -> Fault:
        """Build a Fault from a Fault or a mapping (unknown keys are an error)."""
        if isinstance(value, Fault):
            return Fault(**asdict(value))
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        fault = cls(**{k: v for k, v in value.items() if v is not None})
        if fault.count < 1:
            raise ValueError("count must be >= 1")
        return fault

    def matches(self, method: str, chat_id: Any) -> bool:
        """Whether this fault applies to a call of `method` for `chat_id`."""
        if self.method != "*" and self.method.lower() != method.lower():
            return False
        return self.chat_id is None or str(self.chat_id) == str(chat_id)

    def error(self) -> ApiError:
        """The error this fault answers with (502 Bad Gateway when no error_code is set)."""
        code = self.error_code or 502
        params: dict[str, int] = {}
        retry_after = self.retry_after
        if code == 429 and retry_after is None:
            retry_after = 1
        if retry_after is not None:
            params["retry_after"] = int(retry_after)
        if self.migrate_to_chat_id is not None:
            params["migrate_to_chat_id"] = int(self.migrate_to_chat_id)
        description = self.description
        if description is None:
            default = _DEFAULT_DESCRIPTIONS.get(code, "Error")
            description = default.format(retry_after=retry_after)
        return ApiError(code, description, params or None)


class StoredMessage:
    """A message in a chat, sent by the bot or by the (simulated) user."""

    __slots__ = (
        "chat",
        "date",
        "deleted",
        "direction",
        "edit_date",
        "edits",
        "entities",
        "message_id",
        "parse_mode",
        "raw_text",
        "reply_markup",
        "sender",
        "sent_at",
        "seq",
        "text",
    )

    def __init__(
        self,
        chat: Chat,
        message_id: int,
        direction: str,
        sender: dict[str, Any],
        text: str,
        raw_text: str,
        parse_mode: str | None,
        entities: list[dict[str, Any]],
        reply_markup: dict[str, Any] | None,
        seq: int,
    ) -> None:
        self.chat = chat
        self.message_id = message_id
        self.direction = direction
        self.sender = sender
        self.text = text
        self.raw_text = raw_text
        self.parse_mode = parse_mode
        self.entities = entities
        self.reply_markup = reply_markup
        self.seq = seq
        self.sent_at = time.monotonic()
        self.date = int(time.time())
        self.edit_date: int | None = None
        self.edits: list[dict[str, Any]] | None = None
        self.deleted = False

    def inline_markup(self) -> dict[str, Any] | None:
        """The reply markup if it is an inline keyboard (the only kind echoed in a Message)."""
        markup = self.reply_markup
        return markup if markup is not None and "inline_keyboard" in markup else None

    def to_api(self) -> dict[str, Any]:
        """This message as a Bot API Message object."""
        chat = self.chat
        out: dict[str, Any] = {"message_id": self.message_id}
        if chat.type == "channel" and self.direction == "bot":
            out["sender_chat"] = chat.to_api()
        else:
            out["from"] = self.sender
        out["chat"] = chat.to_api()
        out["date"] = self.date
        if self.edit_date is not None:
            out["edit_date"] = self.edit_date
        out["text"] = self.text
        if self.entities:
            out["entities"] = self.entities
        markup = self.inline_markup()
        if markup is not None:
            out["reply_markup"] = markup
        return out

    def to_view(self) -> dict[str, Any]:
        """This message for the control API and the web page."""
        return {
            "message_id": self.message_id,
            "chat_id": self.chat.id,
            "seq": self.seq,
            "direction": self.direction,
            "from": self.sender,
            "date": self.date,
            "sent_at": self.sent_at,
            "text": self.text,
            "raw_text": self.raw_text,
            "parse_mode": self.parse_mode,
            "entities": self.entities,
            "reply_markup": self.reply_markup,
            "edited": self.edits is not None,
            "edit_date": self.edit_date,
            "edits": self.edits or [],
            "deleted": self.deleted,
        }


class Chat:
    """A chat the stand-in knows, with its messages and simulated state."""

    __slots__ = (
        "bot_count",
        "first_name",
        "id",
        "last",
        "messages",
        "migrate_to",
        "next_message_id",
        "state",
        "title",
        "type",
        "username",
        "version",
    )

    def __init__(self, chat_id: int, chat_type: str | None = None, title: str | None = None):
        self.id = chat_id
        if chat_type is None:
            if chat_id > 0:
                chat_type = "private"
            elif chat_id <= -1_000_000_000_000:
                chat_type = "supergroup"
            else:
                chat_type = "group"
        self.type = chat_type
        self.title = title
        self.first_name = f"User {chat_id}"
        self.username: str | None = None
        self.state = "ok"
        self.migrate_to: int | None = None
        self.next_message_id = 1
        self.messages: dict[int, StoredMessage] = {}
        self.bot_count = 0
        self.last: StoredMessage | None = None
        self.version = 0

    def to_api(self) -> dict[str, Any]:
        """This chat as a Bot API Chat object."""
        if self.type == "private":
            out: dict[str, Any] = {"id": self.id, "first_name": self.first_name}
            if self.username:
                out["username"] = self.username
            out["type"] = "private"
            return out
        return {"id": self.id, "title": self.title or f"Group {self.id}", "type": self.type}

    def default_user(self) -> dict[str, Any]:
        """The user who speaks in this chat when a control call names none."""
        if self.type == "private":
            user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
            if self.username:
                user["username"] = self.username
            return user
        return {"id": 1000, "is_bot": False, "first_name": "Group Member"}

    def to_view(self) -> dict[str, Any]:
        """This chat for the control API and the web page."""
        return {
            **self.to_api(),
            "state": self.state,
            "migrate_to": self.migrate_to,
            "message_count": len(self.messages),
            "bot_message_count": self.bot_count,
            "version": self.version,
            "last_message": self.last.to_view() if self.last is not None else None,
        }


@dataclass
class CallbackRecord:
    """A simulated inline-button press and how the bot answered it."""

    id: str
    chat_id: int
    message_id: int
    data: str
    pressed_at: float
    answered: bool = False
    answered_at: float | None = None
    text: str | None = None
    show_alert: bool = False
    url: str | None = None


@dataclass
class Webhook:
    """The webhook set with setWebhook (the token is kept only to run replies; never shown)."""

    url: str
    secret_token: str | None
    token: str
    allowed_updates: list[str] | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ApiError(400, f"Bad Request: invalid {name} specified")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {name} specified") from None


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return bool(value)


def _as_json(value: Any, what: str) -> Any:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"Bad Request: can't parse {what} JSON object") from None
    return value


def _reply_markup(value: Any) -> dict[str, Any] | None:
    """Validate a reply_markup parameter like Telegram (inline keyboards in detail)."""
    if value in (None, ""):
        return None
    markup = _as_json(value, "reply keyboard markup")
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise ApiError(400, 'Bad Request: field "inline_keyboard" must be an Array of Array')
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise ApiError(400, "Bad Request: BUTTON_TEXT_EMPTY")
            if len(button) == 1:
                raise ApiError(
                    400, "Bad Request: text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not re.match(r"^(https?|tg)://\S+$", str(url)):
                raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
    return markup


def _user_command_entities(text: str) -> list[dict[str, Any]]:
    if not text.startswith("/"):
        return []
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]


_METHODS = (
    "getMe",
    "getChatMember",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "deleteMessage",
    "answerCallbackQuery",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "close",
    "logOut",
    "sendChatAction",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
)
CANONICAL_METHODS = {m.lower(): m for m in _METHODS}


class StandInState:
    """All stand-in state and the Bot API method implementations (no HTTP here)."""

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
        self._update_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._seq = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._bots: dict[str, dict[str, Any]] = {}
        self._webhook_task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.closing = False
        self._poll_generation = 0
        self.polls_waiting = 0  # getUpdates calls in progress
        self.reset()

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget chats, messages, updates, faults, callbacks, webhook and counters."""
        self.chats: dict[int, Chat] = {}
        self.sent_log: list[StoredMessage] = []
        self.sent_base = self._seq
        self.updates: deque[dict[str, Any]] = deque()
        self.faults: list[Fault] = []
        self.callbacks: dict[str, CallbackRecord] = {}
        self.webhook: Webhook | None = None
        self.allowed_updates: list[str] | None = None
        self.commands: list[Any] = []
        self.members = Members()
        self.limits = Limits(**asdict(self.initial_limits))
        self._global_windows: dict[str, list[float]] = {}
        self._chat_windows: dict[int, list[float]] = {}
        self._group_windows: dict[int, list[float]] = {}
        self._penalty: dict[str, list[float]] = {}  # token -> [first 429 at, wait until]
        self.requests: dict[str, int] = {}
        self.errors: dict[int, int] = {}
        self.send_message_accepted = 0
        self.paid_broadcasts = 0
        self.user_messages = 0
        self.too_many_requests = 0
        self.early_retries = 0
        self.fault_hits = 0
        self.updates_total = 0
        self.webhook_delivered = 0
        self.webhook_failed_attempts = 0
        self.webhook_dropped = 0
        self.notify()

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

    def set_limits(self, limits: Limits | Mapping[str, Any] | bool | None) -> Limits:
        """Replace the rate limits (None/False = off, True = Telegram's) and clear windows."""
        self.limits = Limits.coerce(limits)
        self._global_windows.clear()
        self._chat_windows.clear()
        self._group_windows.clear()
        return self.limits

    def add_fault(self, fault: Fault | Mapping[str, Any]) -> Fault:
        """Queue a fault; matching requests consume it in order."""
        item = Fault.coerce(fault)
        self.faults.append(item)
        return item

    def take_fault(self, method: str, chat_id: Any) -> Fault | None:
        """Consume one use of the first fault matching this call, if any."""
        for index, fault in enumerate(self.faults):
            if fault.matches(method, chat_id):
                fault.count -= 1
                if fault.count <= 0:
                    del self.faults[index]
                self.fault_hits += 1
                return fault
        return None

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
            "too_many_requests": self.too_many_requests,
            "early_retries": self.early_retries,
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

    # -------------------------------------------------------- acting as a user
    def _push_update(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self.updates_total += 1
        self.notify()

    def _new_message(
        self,
        chat: Chat,
        direction: str,
        sender: dict[str, Any],
        text: str,
        raw_text: str,
        parse_mode: str | None,
        entities: list[dict[str, Any]],
        reply_markup: dict[str, Any] | None,
    ) -> StoredMessage:
        seq = -1
        if direction == "bot":
            seq = self._seq
            self._seq += 1
        msg = StoredMessage(
            chat,
            chat.next_message_id,
            direction,
            sender,
            text,
            raw_text,
            parse_mode,
            entities,
            reply_markup,
            seq,
        )
        chat.next_message_id += 1
        chat.messages[msg.message_id] = msg
        chat.last = msg
        chat.version += 1
        if direction == "bot":
            chat.bot_count += 1
            self.sent_log.append(msg)
        self.notify()
        return msg

    def user_send(
        self,
        chat_id: int,
        text: str,
        user: Mapping[str, Any] | None = None,
        chat_type: str | None = None,
        title: str | None = None,
        sender_chat: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The user writes `text` in the chat: stores it and queues a `message` update.

        With `sender_chat` the message is sent on behalf of that chat, as Telegram shows an
        anonymous group administrator (the group itself) or a user posting as a channel."""
        if not text:
            raise ValueError("text is empty")
        if sender_chat is not None and not isinstance(sender_chat.get("id"), int):
            raise ValueError("sender_chat needs an integer id")
        chat = self.chat(chat_id, chat_type, title)
        sender = {"is_bot": False, **chat.default_user(), **(user or {})}
        if sender_chat is not None:
            sender = dict(ANONYMOUS_SENDERS["group" if sender_chat["id"] == chat_id else "channel"])
        if chat.type == "private":
            if user and user.get("first_name"):
                chat.first_name = str(user["first_name"])
            if user and user.get("username"):
                chat.username = str(user["username"])
        entities = _user_command_entities(text)
        msg = self._new_message(chat, "user", sender, text, text, None, entities, None)
        self.user_messages += 1
        message = msg.to_api()
        if sender_chat is not None:
            message["sender_chat"] = {"type": "supergroup", **sender_chat}
        update = {"update_id": next(self._update_ids), "message": message}
        self._push_update(update)
        return update

    def press(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        user: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The user presses an inline button: queues a `callback_query` update."""
        chat = self.chats.get(chat_id)
        msg = chat.messages.get(message_id) if chat is not None else None
        if chat is None or msg is None:
            raise KeyError(f"no message {message_id} in chat {chat_id}")
        sender = {"is_bot": False, **chat.default_user(), **(user or {})}
        query_id = str(next(self._callback_ids))
        self.callbacks[query_id] = CallbackRecord(
            id=query_id,
            chat_id=chat_id,
            message_id=message_id,
            data=data,
            pressed_at=time.monotonic(),
        )
        update = {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": query_id,
                "from": sender,
                "message": msg.to_api(),
                "chat_instance": str(abs(chat_id) * 7919 + 1),
                "data": data,
            },
        }
        self._push_update(update)
        return update

    def migrate(self, chat_id: int, new_chat_id: int | None = None) -> list[dict[str, Any]]:
        """The group becomes a supergroup, as Telegram does it: sends to the old id fail with
        `migrate_to_chat_id`, and two service messages are queued as updates (in the old group
        `migrate_to_chat_id`, in the supergroup `migrate_from_chat_id`). Returns the updates."""
        chat = self.chats.get(chat_id)
        if chat is None or chat.type != "group":
            raise ValueError(f"chat {chat_id} is not a known basic group")
        new_id = new_chat_id if new_chat_id is not None else -(10**12) - abs(chat_id)
        if new_id in self.chats:
            raise ValueError(f"chat {new_id} already exists")
        self.set_chat_state(chat_id, "migrated", new_id)
        supergroup = self.chats[new_id]
        sender = {"is_bot": False, **chat.default_user()}
        updates = [
            self._service_update(chat, sender, {"migrate_to_chat_id": new_id}),
            self._service_update(supergroup, sender, {"migrate_from_chat_id": chat_id}),
        ]
        for update in updates:
            self._push_update(update)
        return updates

    def _service_update(
        self, chat: Chat, sender: dict[str, Any], fields: dict[str, Any]
    ) -> dict[str, Any]:
        # Service messages have no text; they are not stored, only delivered as updates.
        message = {
            "message_id": chat.next_message_id,
            "from": sender,
            "chat": chat.to_api(),
            "date": int(time.time()),
            **fields,
        }
        chat.next_message_id += 1
        return {"update_id": next(self._update_ids), "message": message}

    # ------------------------------------------------------------ API calls
    async def call(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        """Run a Bot API method; returns (HTTP status, JSON body) exactly like Telegram."""
        try:
            handler = getattr(self, "_m_" + method)
            result = handler(token, params)
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
            self.too_many_requests += 1
            retry_after = (error.parameters or {}).get("retry_after")
            if retry_after:
                now = time.monotonic()
                penalty = self._penalty.get(token)
                if penalty is None or penalty[1] <= now:
                    self._penalty[token] = [now, now + retry_after]
                else:
                    penalty[1] = max(penalty[1], now + retry_after)
        return error.code, error.body()

    def check_early(self, token: str) -> None:
        """Count a send that arrives while a 429's retry_after is still running."""
        penalty = self._penalty.get(token)
        if penalty is None:
            return
        now = time.monotonic()
        if now >= penalty[1]:
            del self._penalty[token]
        elif now > penalty[0] + self.early_retry_grace:
            self.early_retries += 1

    def _check_limits(self, token: str, chat_id: int, paid: bool = False) -> None:
        limits = self.limits
        now = time.monotonic()
        waits = []
        checks: list[tuple[dict[Any, list[float]], Any, int, float]] = []
        if limits.global_per_sec:
            # Paid broadcasts (allow_paid_broadcast) may go up to 1000 messages per second.
            cap = (
                max(limits.global_per_sec, PAID_BROADCAST_PER_SEC)
                if paid
                else limits.global_per_sec
            )
            checks.append((self._global_windows, token, cap, 1.0))
        if limits.per_chat_per_sec:
            checks.append((self._chat_windows, chat_id, limits.per_chat_per_sec, 1.0))
        if limits.per_group_per_min and chat_id < 0:
            checks.append((self._group_windows, chat_id, limits.per_group_per_min, 60.0))
        windows = []
        for table, key, cap, span in checks:
            window = max(span - limits.slack, 0.001)
            stamps = table.get(key)
            if stamps is None:
                stamps = table[key] = []
            cut = bisect.bisect_right(stamps, now - window)
            if cut:
                del stamps[:cut]
            if len(stamps) >= cap:
                waits.append(stamps[len(stamps) - cap] + window - now)
            windows.append(stamps)
        if waits:
            retry_after = max(1, math.ceil(max(waits)))
            raise ApiError(
                429,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )
        for stamps in windows:
            stamps.append(now)

    def _target_chat(self, params: dict[str, Any]) -> Chat:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self.chats[chat_id] = Chat(chat_id)
        state = chat.state
        if state != "ok":
            if state == "blocked":
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if state == "deactivated":
                raise ApiError(403, "Forbidden: user is deactivated")
            if state == "not_found":
                raise ApiError(400, "Bad Request: chat not found")
            if state == "migrated" and chat.migrate_to is not None:
                raise ApiError(
                    400,
                    "Bad Request: group chat was upgraded to a supergroup chat",
                    {"migrate_to_chat_id": chat.migrate_to},
                )
        return chat

    def _text(self, params: dict[str, Any]) -> tuple[str, str, str | None, list[dict[str, Any]]]:
        raw = params.get("text")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: message text is empty")
        raw = str(raw)
        parse_mode = params.get("parse_mode") or None
        entities = None
        if parse_mode is None and params.get("entities"):
            entities = _as_json(params["entities"], "entities")
            if not isinstance(entities, list):
                raise ApiError(400, "Bad Request: can't parse entities JSON object")
        try:
            shown, ents = prepare_text(raw, parse_mode, entities, self.strict_html_entities)
        except TextError as e:
            raise ApiError(400, str(e)) from None
        return shown, raw, parse_mode, ents

    def _m_getMe(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user(token),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_getChatMember(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._target_chat(params)
        user_id = _as_int(params.get("user_id"), "user_id")
        bot = self.bot_user(token)
        if user_id == bot["id"]:
            return chat_member("administrator", bot)
        default = chat.default_user()
        user = default if default["id"] == user_id else None
        if user is None:
            user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        return chat_member(self.members.status(chat.id, chat.type, user_id, default["id"]), user)

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """Give a user a status in a chat, as getChatMember will answer it."""
        self.members.set(chat_id, user_id, status)
        self.notify()

    def _m_sendMessage(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("chat_id") in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        shown, raw, parse_mode, entities = self._text(params)
        chat = self._target_chat(params)
        markup = _reply_markup(params.get("reply_markup"))
        paid = _as_bool(params.get("allow_paid_broadcast", False))
        if self.limits.enabled:
            self._check_limits(token, chat.id, paid=paid)
        msg = self._new_message(
            chat, "bot", self.bot_user(token), shown, raw, parse_mode, entities, markup
        )
        self.send_message_accepted += 1
        self.paid_broadcasts += paid
        return msg.to_api()

    def _edit_target(self, params: dict[str, Any]) -> StoredMessage:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: message to edit not found")
        chat = self._target_chat(params)
        if params.get("message_id") in (None, ""):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        msg = chat.messages.get(_as_int(params["message_id"], "message_id"))
        if msg is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if msg.direction != "bot":
            raise ApiError(400, "Bad Request: message can't be edited")
        return msg

    def _apply_edit(
        self,
        msg: StoredMessage,
        text: tuple[str, str, str | None, list[dict[str, Any]]] | None,
        markup: dict[str, Any] | None,
    ) -> dict[str, Any]:
        shown, raw, parse_mode, entities = (
            text if text is not None else (msg.text, msg.raw_text, msg.parse_mode, msg.entities)
        )
        old_inline = msg.inline_markup()
        if markup is None and msg.reply_markup is not None and old_inline is None:
            markup = msg.reply_markup  # a reply keyboard is not touched by edits
        if shown == msg.text and entities == msg.entities and markup == msg.reply_markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        if msg.edits is None:
            msg.edits = []
        msg.edits.append(
            {
                "text": msg.text,
                "raw_text": msg.raw_text,
                "parse_mode": msg.parse_mode,
                "entities": msg.entities,
                "reply_markup": msg.reply_markup,
                "replaced_at": time.monotonic(),
            }
        )
        msg.text, msg.raw_text, msg.parse_mode, msg.entities = shown, raw, parse_mode, entities
        msg.reply_markup = markup
        msg.edit_date = int(time.time())
        msg.chat.version += 1
        self.notify()
        return msg.to_api()

    def _m_editMessageText(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        msg = self._edit_target(params)
        text = self._text(params)
        return self._apply_edit(msg, text, _reply_markup(params.get("reply_markup")))

    def _m_editMessageReplyMarkup(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        msg = self._edit_target(params)
        return self._apply_edit(msg, None, _reply_markup(params.get("reply_markup")))

    def _m_deleteMessage(self, token: str, params: dict[str, Any]) -> bool:
        chat = self._target_chat(params)
        message_id = _as_int(params.get("message_id"), "message_id")
        msg = chat.messages.pop(message_id, None)
        if msg is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        msg.deleted = True
        if msg.direction == "bot":
            chat.bot_count -= 1
        if chat.last is msg:
            chat.last = next(reversed(chat.messages.values()), None)
        chat.version += 1
        self.notify()
        return True

    def _m_answerCallbackQuery(self, token: str, params: dict[str, Any]) -> bool:
        record = self.callbacks.get(str(params.get("callback_query_id") or ""))
        if record is None or record.answered:
            raise ApiError(400, _GONE)
        record.answered = True
        record.answered_at = time.monotonic()
        record.text = params.get("text") or None
        record.show_alert = _as_bool(params.get("show_alert", False))
        record.url = params.get("url") or None
        self.notify()
        return True

    def _confirm(self, offset: int) -> None:
        updates = self.updates
        if offset < 0:
            while len(updates) > -offset:
                updates.popleft()
        else:
            while updates and updates[0]["update_id"] < offset:
                updates.popleft()

    def _select(self, limit: int) -> list[dict[str, Any]]:
        allowed = self.allowed_updates
        out = []
        for update in self.updates:
            if allowed and not any(kind in update for kind in allowed):
                continue
            out.append(update)
            if len(out) >= limit:
                break
        return out

    async def _m_getUpdates(self, token: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _as_int(params.get("offset") or 0, "offset")
        limit = min(max(_as_int(params.get("limit") or 100, "limit"), 1), 100)
        timeout = max(0, _as_int(params.get("timeout") or 0, "timeout"))
        if params.get("allowed_updates") not in (None, ""):
            allowed = _as_json(params["allowed_updates"], "allowed_updates")
            self.allowed_updates = list(allowed) if allowed else None
        self._confirm(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        deadline = time.monotonic() + timeout
        self.polls_waiting += 1
        self.notify()  # an older long poll, if any, is terminated
        try:
            while True:
                found = self._select(limit)
                remaining = deadline - time.monotonic()
                if found or remaining <= 0 or self.closing:
                    return found
                await self.wait_change(remaining)
                if self.webhook is not None:
                    raise ApiError(409, "Conflict: terminated by setWebhook request")
                if self._poll_generation != generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    )
        finally:
            self.polls_waiting -= 1

    def _m_setWebhook(self, token: str, params: dict[str, Any]) -> tuple[bool, str]:
        url = str(params.get("url") or "")
        if not url:
            return self._m_deleteWebhook(token, params)
        if not re.match(r"^https?://[^\s/]+", url):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        secret = params.get("secret_token") or None
        if secret is not None and not _SECRET_RE.match(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        allowed = _as_json(params.get("allowed_updates") or "null", "allowed_updates")
        if _as_bool(params.get("drop_pending_updates", False)):
            self.updates.clear()
        self.webhook = Webhook(
            url=url,
            secret_token=str(secret) if secret else None,
            token=token,
            allowed_updates=list(allowed) if allowed else None,
            max_connections=_as_int(params.get("max_connections") or 40, "max_connections"),
        )
        self.allowed_updates = self.webhook.allowed_updates
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.get_running_loop().create_task(self._webhook_loop())
        self.notify()
        return True, "Webhook was set"

    def _m_deleteWebhook(self, token: str, params: dict[str, Any]) -> tuple[bool, str]:
        if _as_bool(params.get("drop_pending_updates", False)):
            self.updates.clear()
        if self.webhook is None:
            return True, "Webhook is already deleted"
        self.webhook = None
        self.notify()
        return True, "Webhook was deleted"

    def _m_getWebhookInfo(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        hook = self.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.allowed_updates:
                info["allowed_updates"] = hook.allowed_updates
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        return info

    def _m_close(self, token: str, params: dict[str, Any]) -> bool:
        return True

    def _m_logOut(self, token: str, params: dict[str, Any]) -> bool:
        return True

    def _m_sendChatAction(self, token: str, params: dict[str, Any]) -> bool:
        self._target_chat(params)
        return True

    def _m_setMyCommands(self, token: str, params: dict[str, Any]) -> bool:
        commands = _as_json(params.get("commands") or "[]", "commands")
        self.commands = list(commands)
        return True

    def _m_getMyCommands(self, token: str, params: dict[str, Any]) -> list[Any]:
        return list(self.commands)

    def _m_deleteMyCommands(self, token: str, params: dict[str, Any]) -> bool:
        self.commands = []
        return True

    # -------------------------------------------------------------- webhook
    async def _webhook_loop(self) -> None:
        attempts = 0
        while not self.closing and self.webhook is not None:
            hook = self.webhook
            if not self.updates:
                await self.wait_change(None)
                continue
            update = self.updates[0]
            if hook.allowed_updates and not any(k in update for k in hook.allowed_updates):
                self.updates.popleft()
                continue
            error = await self._post_update(hook, update)
            if error is None:
                attempts = 0
                if self.updates and self.updates[0] is update:
                    self.updates.popleft()
                self.webhook_delivered += 1
                self.notify()
                continue
            attempts += 1
            self.webhook_failed_attempts += 1
            hook.last_error_date = int(time.time())
            hook.last_error_message = error
            if attempts >= self.webhook_retries:
                attempts = 0
                if self.updates and self.updates[0] is update:
                    self.updates.popleft()
                self.webhook_dropped += 1
                self.notify()
                continue
            # Server-side retry backoff, as Telegram does (not a test wait).
            await asyncio.sleep(min(0.1 * 2**attempts, 2.0))

    async def _post_update(self, hook: Webhook, update: dict[str, Any]) -> str | None:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        try:
            async with self._http.post(
                hook.url,
                data=dumps(update).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as resp:
                if resp.status >= 300:
                    return f"Wrong response from the webhook: {resp.status} {resp.reason}"
                reply = await _read_webhook_reply(resp)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return f"Connection failed: {type(e).__name__}"
        if reply:
            method = CANONICAL_METHODS.get(str(reply.pop("method", "")).lower())
            if method is not None:
                await self.call(hook.token, method, reply)
        return None


async def _read_webhook_reply(resp: aiohttp.ClientResponse) -> dict[str, Any] | None:
    """A bot may answer a webhook POST with a method call (JSON or multipart form)."""
    if resp.content_type == "application/json":
        try:
            data = await resp.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) and "method" in data else None
    if resp.content_type.startswith("multipart/"):
        out: dict[str, Any] = {}
        reader = aiohttp.MultipartReader(resp.headers, resp.content)
        while True:
            part = await reader.next()
            if part is None:
                break
            if isinstance(part, aiohttp.BodyPartReader) and part.name:
                out[part.name] = await part.text()
        return out if "method" in out else None
    return None


def messages_of(chat: Chat | None, direction: str) -> list[StoredMessage]:
    """Messages of a chat, oldest first, in one direction ("bot", "user") or "any"."""
    if chat is None:
        return []
    if direction == "any":
        return list(chat.messages.values())
    return [m for m in chat.messages.values() if m.direction == direction]


def count_of(chat: Chat | None, direction: str) -> int:
    """How many messages a chat has in one direction, without scanning them."""
    if chat is None:
        return 0
    if direction == "bot":
        return chat.bot_count
    if direction == "any":
        return len(chat.messages)
    return len(chat.messages) - chat.bot_count
