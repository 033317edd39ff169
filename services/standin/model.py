"""The stand-in's world: chats, their messages, and users' button presses (plain objects, no I/O).

Hot path (sendMessage): messages are slotted objects, and a chat keeps its counts so nothing
scans its messages to answer how many there are.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

DEFAULT_GROUP_USER_ID = 1000
"""The user who speaks in a group, supergroup or channel when a control call names none."""

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


class UserMessage(TypedDict, total=False):
    """How a simulated user's message is sent: as whom (`user`), in what kind of chat
    (`chat_type`, `title`), on whose behalf (`sender_chat`: the group itself or a channel)."""

    user: Mapping[str, Any] | None
    chat_type: str | None
    title: str | None
    sender_chat: Mapping[str, Any] | None
    message_thread_id: int | None


class Text(NamedTuple):
    """A message's text: as shown, as sent, its parse mode, and its entities."""

    shown: str
    raw: str
    parse_mode: str | None
    entities: list[dict[str, Any]]


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
        "options",
        "parse_mode",
        "photo",
        "raw_text",
        "reply_markup",
        "sender",
        "sent_at",
        "seq",
        "text",
        "thread",
    )

    def __init__(
        self,
        chat: Chat,
        direction: str,
        sender: dict[str, Any],
        text: Text,
        reply_markup: dict[str, Any] | None,
    ) -> None:
        """A message not yet stored: `Chat.add` gives it its id, a bot's `seq` is set then."""
        self.chat = chat
        self.message_id = 0
        self.direction = direction
        self.sender = sender
        self.text, self.raw_text, self.parse_mode, self.entities = text
        self.reply_markup = reply_markup
        self.seq = -1  # a bot message's place in the stand-in's sent log
        self.sent_at = time.monotonic()
        self.date = int(time.time())
        self.edit_date: int | None = None
        self.edits: list[dict[str, Any]] | None = None
        self.deleted = False
        self.options: dict[str, Any] = {}
        """How the bot asked for it to be delivered (`wire.delivery_options`)."""
        self.thread: int | None = None
        """The forum topic it was sent in (`message_thread_id`); None: the chat (General)."""
        self.photo: str | None = None
        """A photo message's photo (the URL or file id sent); its `text` is then the caption."""

    def content(self) -> Text:
        """The message's current text."""
        return Text(self.text, self.raw_text, self.parse_mode, self.entities)

    def inline_markup(self) -> dict[str, Any] | None:
        """The reply markup if it is an inline keyboard (the only kind echoed in a Message)."""
        markup = self.reply_markup
        return markup if markup is not None and "inline_keyboard" in markup else None

    def replace(self, text: Text, markup: dict[str, Any] | None) -> None:
        """Edit the message, keeping what it said before in `edits`."""
        if self.edits is None:
            self.edits = []
        self.edits.append(
            {
                "text": self.text,
                "raw_text": self.raw_text,
                "parse_mode": self.parse_mode,
                "entities": self.entities,
                "reply_markup": self.reply_markup,
                "replaced_at": time.monotonic(),
            }
        )
        self.text, self.raw_text, self.parse_mode, self.entities = text
        self.reply_markup = markup
        self.edit_date = int(time.time())
        self.chat.version += 1

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
        if self.thread is not None:
            out["message_thread_id"] = self.thread
            out["is_topic_message"] = True
        if self.photo is None:
            out["text"] = self.text
            if self.entities:
                out["entities"] = self.entities
        else:
            out["photo"] = _photo_sizes(self.photo)
            if self.text:
                out["caption"] = self.text
            if self.entities:
                out["caption_entities"] = self.entities
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
            "options": self.options,
            "message_thread_id": self.thread,
            "photo": self.photo,
        }


def _photo_sizes(photo: str) -> list[dict[str, Any]]:
    """The PhotoSize list Telegram returns for a photo (two sizes, ids derived from it)."""
    key = hashlib.sha256(photo.encode()).hexdigest()
    return [
        {"file_id": f"AgAC{key[:40]}{side}", "file_unique_id": f"AQAD{key[:12]}{side}",
         "width": side, "height": side, "file_size": side * 40}
        for side in (90, 320)
    ]  # fmt: skip


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
        "topics",
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
        self.topics: dict[int, str] = {}
        """Forum topics that are not open: thread id -> `closed` or `deleted`."""

    def add(self, msg: StoredMessage) -> StoredMessage:
        """Store a new message of this chat under the chat's next message id."""
        msg.message_id = self.next_message_id
        self.next_message_id += 1
        self.messages[msg.message_id] = msg
        self.last = msg
        self.version += 1
        if msg.direction == "bot":
            self.bot_count += 1
        return msg

    def remove(self, message_id: int) -> StoredMessage | None:
        """Delete a message; returns it, or None if the chat has no such message."""
        msg = self.messages.pop(message_id, None)
        if msg is None:
            return None
        msg.deleted = True
        if msg.direction == "bot":
            self.bot_count -= 1
        if self.last is msg:
            self.last = next(reversed(self.messages.values()), None)
        self.version += 1
        return msg

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
        return {"id": DEFAULT_GROUP_USER_ID, "is_bot": False, "first_name": "Group Member"}

    def to_view(self) -> dict[str, Any]:
        """This chat for the control API and the web page."""
        return {
            **self.to_api(),
            "state": self.state,
            "migrate_to": self.migrate_to,
            "message_count": len(self.messages),
            "bot_message_count": self.bot_count,
            "version": self.version,
            "topics": {str(thread): state for thread, state in self.topics.items()},
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
