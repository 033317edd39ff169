"""The Bot API methods the stand-in implements: `METHODS`, one handler per method, is the list.

A handler takes (state, token, params) and returns the method's `result`, a (result,
description) pair, or an awaitable of either; it raises `ApiError` for Telegram's error answers.
The handlers of messages and chats are here; those of updates are in `updates.py`. A method not
in `METHODS` answers 404 Not Found, as Telegram does. The README lists the same methods.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from services.standin import photos, updates
from services.standin.members import chat_member
from services.standin.model import Chat, StoredMessage, Text
from services.standin.wire import (
    ApiError,
    as_bool,
    as_int,
    as_json,
    delivery_options,
    message_text,
    reply_markup,
)

if TYPE_CHECKING:
    from services.standin.state import StandInState

Handler = Callable[["StandInState", str, dict[str, Any]], Any]

_GONE = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


def target_chat(state: StandInState, params: dict[str, Any]) -> Chat:
    """The chat of `chat_id`, or the error Telegram answers for its simulated state."""
    raw = params.get("chat_id")
    if raw is None or raw == "":
        raise ApiError(400, "Bad Request: chat_id is empty")
    try:
        chat_id = int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, "Bad Request: chat not found") from None
    chat = state.chats.get(chat_id)
    if chat is None:
        chat = state.chats[chat_id] = Chat(chat_id)
    status = chat.state
    if status != "ok":
        if status == "blocked":
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if status == "deactivated":
            raise ApiError(403, "Forbidden: user is deactivated")
        if status == "not_found":
            raise ApiError(400, "Bad Request: chat not found")
        if status == "migrated" and chat.migrate_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrate_to},
            )
    return chat


def get_me(state: StandInState, token: str, params: dict[str, Any]) -> dict[str, Any]:
    """getMe: the bot's User, with the flags aiogram reads."""
    return {
        **state.bot_user(token),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def get_chat_member(state: StandInState, token: str, params: dict[str, Any]) -> dict[str, Any]:
    """getChatMember: the ChatMember of `user_id` (see members.py for the defaults)."""
    chat = target_chat(state, params)
    user_id = as_int(params.get("user_id"), "user_id")
    bot = state.bot_user(token)
    if user_id == bot["id"]:
        return chat_member("administrator", bot)
    default = chat.default_user()
    user = default if default["id"] == user_id else None
    if user is None:
        user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
    return chat_member(state.members.status(chat.id, chat.type, user_id, default["id"]), user)


TOPIC_ERRORS = {
    "closed": "Bad Request: TOPIC_CLOSED",
    "deleted": "Bad Request: message thread not found",
}
"""Telegram's answer to a send into a forum topic that is closed or deleted."""


def send_message(state: StandInState, token: str, params: dict[str, Any]) -> dict[str, Any]:
    """sendMessage: rate limited (with sendPhoto)."""
    if params.get("chat_id") in (None, ""):
        raise ApiError(400, "Bad Request: chat_id is empty")
    return _deliver(state, token, params, message_text(params, state.strict_html_entities))


def send_photo(state: StandInState, token: str, params: dict[str, Any]) -> dict[str, Any]:
    """sendPhoto: a photo (by URL or file id) with a caption, delivered like a sendMessage."""
    if params.get("chat_id") in (None, ""):
        raise ApiError(400, "Bad Request: chat_id is empty")
    photo = photos.photo_of(params)
    caption = photos.caption_of(params, state.strict_html_entities)
    return _deliver(state, token, params, caption, photo)


def _deliver(
    state: StandInState, token: str, params: dict[str, Any], content: Text, photo: str | None = None
) -> dict[str, Any]:
    """Store a message the bot sends, after the chat's state, its topic and the limits."""
    chat = target_chat(state, params)
    markup = reply_markup(params.get("reply_markup"))
    options = delivery_options(params)
    thread = options.get("message_thread_id")
    if thread is not None and thread in chat.topics:
        raise ApiError(400, TOPIC_ERRORS[chat.topics[thread]])
    paid = as_bool(params.get("allow_paid_broadcast", False))
    if state.limits.enabled:
        state.limiter.check(token, chat.id, paid=paid)
    msg = StoredMessage(chat, "bot", state.bot_user(token), content, markup)
    msg.options, msg.thread, msg.photo = options, thread, photo
    msg = state.store(msg)
    state.send_message_accepted += 1
    state.paid_broadcasts += paid
    return msg.to_api()


def edit_target(state: StandInState, params: dict[str, Any]) -> StoredMessage:
    if params.get("inline_message_id"):
        raise ApiError(400, "Bad Request: message to edit not found")
    chat = target_chat(state, params)
    if params.get("message_id") in (None, ""):
        raise ApiError(400, "Bad Request: message identifier is not specified")
    msg = chat.messages.get(as_int(params["message_id"], "message_id"))
    if msg is None:
        raise ApiError(400, "Bad Request: message to edit not found")
    if msg.direction != "bot":
        raise ApiError(400, "Bad Request: message can't be edited")
    return msg


def edit(
    state: StandInState, msg: StoredMessage, text: Text | None, markup: dict[str, Any] | None
) -> dict[str, Any]:
    new = text if text is not None else msg.content()
    if markup is None and msg.reply_markup is not None and msg.inline_markup() is None:
        markup = msg.reply_markup  # a reply keyboard is not touched by edits
    if new.shown == msg.text and new.entities == msg.entities and markup == msg.reply_markup:
        raise ApiError(400, _NOT_MODIFIED)
    msg.replace(new, markup)
    state.notify()
    return msg.to_api()


def edit_message_text(state: StandInState, token: str, params: dict[str, Any]) -> dict[str, Any]:
    """editMessageText: new text (and inline keyboard) for a message the bot sent."""
    msg = edit_target(state, params)
    if msg.photo is not None:
        raise ApiError(400, photos.NO_TEXT)
    text = message_text(params, state.strict_html_entities)
    preview = delivery_options(params).get("link_preview_options")
    if state.limits.edits_per_group_per_min:
        state.limiter.check_edit(msg.chat.id)
    edited = edit(state, msg, text, reply_markup(params.get("reply_markup")))
    if preview is not None:
        msg.options["link_preview_options"] = preview
    return edited


def edit_message_caption(state: StandInState, token: str, params: dict[str, Any]) -> dict[str, Any]:
    """editMessageCaption: a new caption (and inline keyboard) for a photo the bot sent."""
    msg = edit_target(state, params)
    if msg.photo is None:
        raise ApiError(400, photos.NO_CAPTION)
    caption = photos.caption_of(params, state.strict_html_entities)
    if state.limits.edits_per_group_per_min:
        state.limiter.check_edit(msg.chat.id)
    return edit(state, msg, caption, reply_markup(params.get("reply_markup")))


def edit_message_reply_markup(
    state: StandInState, token: str, params: dict[str, Any]
) -> dict[str, Any]:
    """editMessageReplyMarkup: a new inline keyboard (or none) for a message the bot sent."""
    msg = edit_target(state, params)
    return edit(state, msg, None, reply_markup(params.get("reply_markup")))


def delete_message(state: StandInState, token: str, params: dict[str, Any]) -> bool:
    """deleteMessage: a message of either side is removed from its chat."""
    chat = target_chat(state, params)
    if chat.remove(as_int(params.get("message_id"), "message_id")) is None:
        raise ApiError(400, "Bad Request: message to delete not found")
    state.notify()
    return True


def answer_callback_query(state: StandInState, token: str, params: dict[str, Any]) -> bool:
    """answerCallbackQuery: recorded on the press, once."""
    record = state.callbacks.get(str(params.get("callback_query_id") or ""))
    if record is None or record.answered:
        raise ApiError(400, _GONE)
    record.answered = True
    record.answered_at = time.monotonic()
    record.text = params.get("text") or None
    record.show_alert = as_bool(params.get("show_alert", False))
    record.url = params.get("url") or None
    state.notify()
    return True


def send_chat_action(state: StandInState, token: str, params: dict[str, Any]) -> bool:
    """sendChatAction: accepted for a chat that would accept a message."""
    target_chat(state, params)
    return True


def set_my_commands(state: StandInState, token: str, params: dict[str, Any]) -> bool:
    """setMyCommands: kept in `state.commands` (one list for all scopes and languages)."""
    state.commands = list(as_json(params.get("commands") or "[]", "commands"))
    return True


def get_my_commands(state: StandInState, token: str, params: dict[str, Any]) -> list[Any]:
    """getMyCommands."""
    return list(state.commands)


def delete_my_commands(state: StandInState, token: str, params: dict[str, Any]) -> bool:
    """deleteMyCommands."""
    state.commands = []
    return True


def accepted(state: StandInState, token: str, params: dict[str, Any]) -> bool:
    """close, logOut: accepted, nothing happens."""
    return True


METHODS: dict[str, Handler] = {
    "getMe": get_me,
    "getChatMember": get_chat_member,
    "sendMessage": send_message,
    "sendPhoto": send_photo,
    "editMessageText": edit_message_text,
    "editMessageCaption": edit_message_caption,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "answerCallbackQuery": answer_callback_query,
    "getUpdates": updates.get_updates,
    "setWebhook": updates.set_webhook,
    "deleteWebhook": updates.delete_webhook,
    "getWebhookInfo": updates.get_webhook_info,
    "close": accepted,
    "logOut": accepted,
    "sendChatAction": send_chat_action,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
}
"""Every Bot API method the stand-in answers, by its name."""

CANONICAL_METHODS = {name.lower(): name for name in METHODS}
"""Method names are case-insensitive: lower-case name -> the name in `METHODS`."""
