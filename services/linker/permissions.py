"""Who may change a chat's notifications through the bot.

In a private chat, its user. In a group, supergroup or channel, only its administrators (Bot API
`getChatMember`: status `creator` or `administrator`): otherwise any member could /stop, /mute,
re-link, press Mute or Retry, or change the /settings of the whole group. An anonymous group
administrator writes as the group itself (`sender_chat` is the chat), so a message from the group
is from an administrator; a message sent as a channel (`sender_chat` another chat) is not.

Telegram decides, every time: an administrator who is demoted can no longer change anything.
When Telegram cannot say (an error, an answer without a status), the change is refused, and the
user is told to try again.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Chat, User

from services.common.logging import mask_chat_id
from services.common.telegram import UnexpectedResult, result_field

log = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({"creator", "administrator"})


class Permission(StrEnum):
    """The verdict on one change."""

    ALLOWED = "allowed"
    NOT_ADMIN = "not_admin"
    UNKNOWN = "unknown"
    """Telegram could not tell whether the user is an administrator: refused, try again."""


async def may_change(
    bot: Bot, chat: Chat, user: User | None, sender_chat: Chat | None = None
) -> Permission:
    """Whether `user` (or `sender_chat`, for a message sent on behalf of a chat) may change the
    notifications of `chat`."""
    if chat.type == "private":
        return Permission.ALLOWED
    if sender_chat is not None:
        return Permission.ALLOWED if sender_chat.id == chat.id else Permission.NOT_ADMIN
    if user is None:
        return Permission.NOT_ADMIN
    try:
        member = await bot.get_chat_member(chat.id, user.id)
        status: str | None = member.status
    except UnexpectedResult as exc:  # a server whose ChatMember differs: read its status
        status = result_field(exc.result, "status")
    except TelegramAPIError as exc:
        log.warning("getChatMember failed: %s", exc.message, extra={"chat": mask_chat_id(chat.id)})
        return Permission.UNKNOWN
    if status is None:
        log.warning("getChatMember's answer has no status", extra={"chat": mask_chat_id(chat.id)})
        return Permission.UNKNOWN
    return Permission.ALLOWED if status in ADMIN_STATUSES else Permission.NOT_ADMIN
