"""Presses of inline buttons: the notifier's Mute and Retry, and the /settings keyboard.

Every press is answered, exactly once, a refused one too. In order: the data must be signed for
the chat it is pressed in (else "no longer valid"), not older than its action's lifetime (else
"expired", see `menu`), the chat must be linked, and in a group the presser must be one of its
administrators (`permissions`). Retry is limited per platform user and per failed post.
"""

from __future__ import annotations

import logging
from datetime import datetime

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
)

from services.common.callbacks import parse_short_uuid, sign, verify
from services.common.logging import mask_chat_id
from services.linker import menu, texts
from services.linker.errors import RateLimited, RetryNotSent, RetryRefused
from services.linker.permissions import Permission, may_change
from services.linker.preferences import MUTABLE_TYPES, Preferences
from services.linker.service import LinkService

log = logging.getLogger(__name__)


def settings_markup(
    key: bytes, chat_id: int, prefs: Preferences, now: datetime
) -> InlineKeyboardMarkup:
    """The /settings keyboard, each button signed for this chat and dated `now`."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=button.label,
                    callback_data=sign(key, chat_id, button.action, button.argument, issued_at=now),
                )
                for button in row
            ]
            for row in menu.settings_keyboard(prefs)
        ]
    )


async def respond(query: CallbackQuery, text: str) -> None:
    """Answer a button press; an answer Telegram does not take (the press is too old, Telegram
    cannot be reached) is only logged: the change itself is done."""
    try:
        await query.answer(text)
    except TelegramAPIError as exc:
        log.warning("callback query not answered: %s", exc.message)


async def pressed(query: CallbackQuery, bot: Bot, links: LinkService, button_key: bytes) -> None:
    """The handler of every callback query."""
    message = query.message
    if message is None:  # a button of an inline-mode message, or one Telegram sent unreadable
        await respond(query, texts.answer("invalid", "ko"))
        return
    chat_id = message.chat.id
    prefs = await links.chat_preferences(chat_id)
    language = prefs.language if prefs is not None else "ko"
    signed = verify(button_key, chat_id, query.data)
    if signed is None:
        # Forged, signed for another chat, or made with a bot token since rotated.
        log.warning("button press refused", extra={"chat": mask_chat_id(chat_id)})
        await respond(query, texts.answer("invalid", language))
        return
    if menu.expired(signed, links.clock()):
        expired = "retry_expired" if signed.action == menu.RETRY else "expired"
        await respond(query, texts.answer(expired, language))
        return
    if prefs is None:
        await respond(query, texts.answer("not_linked", language))
        return
    permission = await may_change(bot, message.chat, query.from_user)
    if permission is not Permission.ALLOWED:
        refused = "admins_only" if permission is Permission.NOT_ADMIN else "permission_unknown"
        await respond(query, texts.answer(refused, language))
        return
    action, argument = signed.action, signed.argument
    if action == menu.MUTE and argument in MUTABLE_TYPES:
        await links.change_chat_preferences(chat_id, lambda p: p.muting(argument, True))
        await respond(query, texts.answer("muted", language, argument))
        await links.record_press(chat_id, "mute", "muted", message_id=message.message_id)
    elif action == menu.RETRY:
        await _retry(query, bot, links, chat_id, argument, language)
    elif action in menu.SETTINGS_ACTIONS:
        await _change_settings(query, links, (action, argument), language, button_key)
    else:
        await respond(query, texts.answer("invalid", language))


async def _retry(
    query: CallbackQuery, bot: Bot, links: LinkService, chat_id: int, argument: str, language: str
) -> None:
    failure_id = parse_short_uuid(argument)
    if failure_id is None:
        await respond(query, texts.answer("retry_unknown", language))
        return
    assert query.message is not None
    outcome = "requested"
    try:
        platform = await links.request_retry(chat_id, failure_id, query.id)
    except RetryRefused:
        outcome = "refused"
        await respond(query, texts.answer("retry_unknown", language))
    except RateLimited as exc:
        outcome = "rate_limited"
        await respond(query, texts.retry_limited(exc.retry_after, language))
    except RetryNotSent:
        outcome = "not_sent"
        await respond(query, texts.answer("retry_not_sent", language))
    message_id = query.message.message_id
    await links.record_press(chat_id, "retry", outcome, message_id=message_id, event_id=failure_id)
    if outcome != "requested":
        return
    await respond(query, texts.answer("retry_requested", language))
    try:
        await bot.send_message(
            chat_id,
            texts.retry_requested(platform, language),
            parse_mode=None,
            reply_parameters=ReplyParameters(
                message_id=query.message.message_id, allow_sending_without_reply=True
            ),
        )
    except TelegramAPIError as exc:
        # The request is published and the press answered; only the note in the chat is lost.
        log.warning("retry note not sent: %s", exc.message)


async def _change_settings(
    query: CallbackQuery,
    links: LinkService,
    pressed: tuple[str, str],
    language: str,
    key: bytes,
) -> None:
    assert query.message is not None
    chat_id = query.message.chat.id
    change = menu.settings_change(*pressed)
    prefs = await links.change_chat_preferences(chat_id, change) if change else None
    if prefs is None:
        await respond(query, texts.answer("invalid", language))
        return
    await respond(query, texts.answer("saved", prefs.language))
    message = query.message
    if not isinstance(message, Message):  # too old to be shown to the bot: nothing to edit
        return
    text, markup = texts.settings_text(prefs), settings_markup(key, chat_id, prefs, links.clock())
    if message.text == text and _labels(message.reply_markup) == _labels(markup):
        return  # editing to the same content is an error at Telegram
    try:
        await message.edit_text(text, parse_mode=None, reply_markup=markup)
    except TelegramAPIError as exc:
        log.warning("settings message not edited: %s", exc.message)


def _labels(markup: InlineKeyboardMarkup | None) -> list[list[str]] | None:
    """The button labels of a keyboard: the same labels are the same menu (dates differ)."""
    if markup is None:
        return None
    return [[button.text for button in row] for row in markup.inline_keyboard]
