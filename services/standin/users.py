"""The users' side of Telegram: a user writes, presses a button, a group becomes a supergroup.

Each stores what Telegram would store and queues the update a bot receives (`state.updates`);
the control API, the web page and `StandIn` call these.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from services.standin.model import ANONYMOUS_SENDERS, CallbackRecord, Chat, StoredMessage, Text
from services.standin.text import command_entities

if TYPE_CHECKING:
    from services.standin.state import StandInState


def write(
    state: StandInState,
    chat_id: int,
    text: str,
    user: Mapping[str, Any] | None = None,
    chat_type: str | None = None,
    title: str | None = None,
    sender_chat: Mapping[str, Any] | None = None,
    message_thread_id: int | None = None,
) -> dict[str, Any]:
    """The user writes `text` in the chat (in forum topic `message_thread_id`, if given; any
    integer, as a test of a bot's input wants it): stores it and queues a `message` update.

    With `sender_chat` the message is sent on behalf of that chat, as Telegram shows an
    anonymous group administrator (the group itself) or a user posting as a channel."""
    if not text:
        raise ValueError("text is empty")
    if sender_chat is not None and not isinstance(sender_chat.get("id"), int):
        raise ValueError("sender_chat needs an integer id")
    thread = message_thread_id
    if thread is not None and (not isinstance(thread, int) or isinstance(thread, bool)):
        raise ValueError("message_thread_id must be an integer")
    chat = state.chat(chat_id, chat_type, title)
    sender = {"is_bot": False, **chat.default_user(), **(user or {})}
    if sender_chat is not None:
        sender = dict(ANONYMOUS_SENDERS["group" if sender_chat["id"] == chat_id else "channel"])
    if chat.type == "private":
        if user and user.get("first_name"):
            chat.first_name = str(user["first_name"])
        if user and user.get("username"):
            chat.username = str(user["username"])
    content = Text(text, text, None, command_entities(text))
    msg = StoredMessage(chat, "user", sender, content, None)
    msg.thread = thread
    msg = state.store(msg)
    state.user_messages += 1
    message = msg.to_api()
    if sender_chat is not None:
        message["sender_chat"] = {"type": "supergroup", **sender_chat}
    update = {"update_id": next(state.update_ids), "message": message}
    state.push_update(update)
    return update


def press(
    state: StandInState,
    chat_id: int,
    message_id: int,
    data: str,
    user: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The user presses an inline button: queues a `callback_query` update."""
    chat = state.chats.get(chat_id)
    msg = chat.messages.get(message_id) if chat is not None else None
    if chat is None or msg is None:
        raise KeyError(f"no message {message_id} in chat {chat_id}")
    sender = {"is_bot": False, **chat.default_user(), **(user or {})}
    query_id = str(next(state.callback_ids))
    state.callbacks[query_id] = CallbackRecord(
        id=query_id,
        chat_id=chat_id,
        message_id=message_id,
        data=data,
        pressed_at=time.monotonic(),
    )
    update = {
        "update_id": next(state.update_ids),
        "callback_query": {
            "id": query_id,
            "from": sender,
            "message": msg.to_api(),
            "chat_instance": str(abs(chat_id) * 7919 + 1),
            "data": data,
        },
    }
    state.push_update(update)
    return update


def migrate(
    state: StandInState, chat_id: int, new_chat_id: int | None = None
) -> list[dict[str, Any]]:
    """The group becomes a supergroup, as Telegram does it: sends to the old id fail with
    `migrate_to_chat_id`, and two service messages are queued as updates (in the old group
    `migrate_to_chat_id`, in the supergroup `migrate_from_chat_id`). Returns the updates."""
    chat = state.chats.get(chat_id)
    if chat is None or chat.type != "group":
        raise ValueError(f"chat {chat_id} is not a known basic group")
    new_id = new_chat_id if new_chat_id is not None else -(10**12) - abs(chat_id)
    if new_id in state.chats:
        raise ValueError(f"chat {new_id} already exists")
    state.set_chat_state(chat_id, "migrated", new_id)
    supergroup = state.chats[new_id]
    sender = {"is_bot": False, **chat.default_user()}
    updates = [
        _service_update(state, chat, sender, {"migrate_to_chat_id": new_id}),
        _service_update(state, supergroup, sender, {"migrate_from_chat_id": chat_id}),
    ]
    for update in updates:
        state.push_update(update)
    return updates


def set_topic(state: StandInState, chat_id: int, thread: int, status: str) -> Chat:
    """A forum topic of the chat is `open`, `closed` or `deleted`: sends into one that is not
    open answer 400 as Telegram does (`methods.TOPIC_ERRORS`)."""
    if status not in ("open", "closed", "deleted"):
        raise ValueError("state must be open, closed or deleted")
    chat = state.chat(chat_id)
    if status == "open":
        chat.topics.pop(thread, None)
    else:
        chat.topics[thread] = status
    chat.version += 1
    return chat


def _service_update(
    state: StandInState, chat: Chat, sender: dict[str, Any], fields: dict[str, Any]
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
    return {"update_id": next(state.update_ids), "message": message}
