"""The bot side of the linker: aiogram handlers for the chat's commands, and the Telegram
adapters. Button presses are `presses`; who may change a group's notifications is `permissions`.

Handlers receive the `LinkService` (`links`) and the key of signed buttons (`button_key`) as
aiogram workflow data, never from a global. In a group, supergroup or channel only its
administrators may link it, /start (resume), /stop, /mute TYPE, /unmute TYPE or press a button;
/status, /help and showing /settings are for everyone.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.filters import (
    IS_MEMBER,
    IS_NOT_MEMBER,
    ChatMemberUpdatedFilter,
    Command,
    CommandObject,
    CommandStart,
)
from aiogram.types import BotCommand, ChatMemberUpdated, ErrorEvent, Message

from services.common.logging import mask_chat_id
from services.common.telegram import UnexpectedResult, result_field
from services.linker import presses, texts
from services.linker.errors import BotUnavailable
from services.linker.linking import ChatOutcome
from services.linker.permissions import Permission, may_change
from services.linker.ports import BotUsername, SendRefused
from services.linker.preferences import MUTABLE_TYPES, Preferences, topic
from services.linker.service import LinkService

log = logging.getLogger(__name__)

TRY_AGAIN = "⚠️ 일시적인 오류가 발생했습니다. 잠시 후 다시 시도해 주세요."


class BotSender:
    """`MessageSender` over aiogram: Telegram's refusals become `SendRefused`."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def send_text(self, chat_id: int, text: str) -> None:
        """Send `text` to `chat_id`; raise `SendRefused` with Telegram's reason if refused."""
        try:
            await self._bot.send_message(chat_id, text, parse_mode=None)
        except TelegramMigrateToChat as exc:
            raise SendRefused(exc.message, migrate_to=exc.migrate_to_chat_id) from None
        except TelegramRetryAfter as exc:
            raise SendRefused(exc.message, retry_after=float(exc.retry_after)) from None
        except TelegramForbiddenError as exc:
            raise SendRefused(exc.message, blocked=True) from None
        except TelegramNetworkError:
            raise SendRefused("Telegram could not be reached") from None
        except TelegramAPIError as exc:
            raise SendRefused(exc.message) from None


def bot_username_source(bot: Bot, configured: str | None) -> BotUsername:
    """The bot's username: TELEGRAM_BOT_USERNAME, else asked with getMe until Telegram names it
    (then kept)."""
    known: list[str] = []

    async def username() -> str:
        if configured:
            return configured.removeprefix("@")
        if known:
            return known[0]
        try:
            found = (await bot.get_me()).username
        except UnexpectedResult as exc:
            found = result_field(exc.result, "username")
        except TelegramAPIError as exc:
            log.warning("getMe failed: %s", type(exc).__name__)
            raise BotUnavailable("the bot's username is unknown; try again shortly") from None
        if not found:
            raise BotUnavailable("Telegram's getMe answer names no username for the bot")
        known.append(found)
        return found

    return username


def topic_of(message: Message) -> int | None:
    """The forum topic a message was sent in (`message_thread_id` of a topic message), or None:
    the chat itself, a forum's General topic, a reply thread, or an id no link can store."""
    return topic(message.message_thread_id) if message.is_topic_message else None


async def answer(message: Message, text: str) -> None:
    """Reply in the message's chat (plain text: our texts carry no markup)."""
    await message.answer(text, parse_mode=None)


async def show_settings(
    message: Message, links: LinkService, prefs: Preferences, key: bytes
) -> None:
    """Send the settings message with its keyboard."""
    await message.answer(
        texts.settings_text(prefs),
        parse_mode=None,
        reply_markup=presses.settings_markup(key, message.chat.id, prefs, links.clock()),
    )


async def allowed(message: Message, bot: Bot, language: str = "ko") -> bool:
    """Whether the sender may change this chat's notifications; if not, tell them why."""
    permission = await may_change(bot, message.chat, message.from_user, message.sender_chat)
    if permission is Permission.ALLOWED:
        return True
    refused = "admins_only" if permission is Permission.NOT_ADMIN else "permission_unknown"
    await answer(message, texts.answer(refused, language))
    return False


async def _language(links: LinkService, chat_id: int) -> str:
    prefs = await links.chat_preferences(chat_id)
    return prefs.language if prefs is not None else "ko"


def make_router() -> Router:
    """The handlers of the commands, the button presses and chat changes."""
    router = Router(name="linker")

    @router.message(CommandStart(deep_link=True))
    async def start_with_token(
        message: Message, command: CommandObject, bot: Bot, links: LinkService
    ) -> None:
        permission = await may_change(bot, message.chat, message.from_user, message.sender_chat)
        if permission is Permission.NOT_ADMIN:
            await answer(message, texts.LINK_ADMINS_ONLY)  # the token stays unused
            return
        if permission is Permission.UNKNOWN:
            await answer(message, texts.answer("permission_unknown", "ko"))
            return
        outcome, problem = await links.redeem_in_chat(
            command.args or "", message.chat.id, message.chat.type, topic_of(message)
        )
        if outcome is ChatOutcome.LINKED:
            await answer(message, texts.LINKED)
        elif outcome is ChatOutcome.ALREADY_LINKED:
            await answer(message, texts.ALREADY_LINKED)
        else:
            assert problem is not None
            await answer(message, texts.TOKEN_REFUSED[problem])

    @router.message(CommandStart())
    async def start(message: Message, bot: Bot, links: LinkService, token_ttl_seconds: int) -> None:
        # Unblocking the bot ("Restart") sends a bare /start: that resumes a paused link.
        found = await links.chat_links(message.chat.id)
        if any(not link.enabled for link in found):
            if not await allowed(message, bot, await _language(links, message.chat.id)):
                return
            if await links.set_chat_enabled(message.chat.id, True):
                await answer(message, texts.RESUMED)
                return
        if found:
            await answer(message, texts.ALREADY_LINKED)
        else:
            await answer(message, texts.welcome(token_ttl_seconds))

    @router.message(Command("status"))
    async def status(message: Message, links: LinkService) -> None:
        found = await links.chat_links(message.chat.id)
        language = found[0].language if found else "ko"
        if not found:
            state = texts.STATUS_NOT_LINKED
        elif any(link.enabled for link in found):
            state = texts.STATUS_LINKED
        else:
            state = texts.STATUS_PAUSED
        await answer(message, texts.status_text(state, language))

    @router.message(Command("stop"))
    async def stop(message: Message, bot: Bot, links: LinkService) -> None:
        if not await allowed(message, bot, await _language(links, message.chat.id)):
            return
        removed = await links.stop_chat(message.chat.id)
        await answer(message, texts.STOPPED if removed else texts.STOP_NOT_LINKED)

    @router.message(Command("help"))
    async def help_(message: Message, links: LinkService) -> None:
        await answer(message, texts.help_text(await _language(links, message.chat.id)))

    @router.message(Command("settings"))
    async def settings(message: Message, links: LinkService, button_key: bytes) -> None:
        prefs = await links.chat_preferences(message.chat.id)
        if prefs is None:
            await answer(message, texts.STATUS_NOT_LINKED)
        else:
            await show_settings(message, links, prefs, button_key)

    @router.message(Command("mute", "unmute"))
    async def mute(
        message: Message,
        command: CommandObject,
        bot: Bot,
        links: LinkService,
        button_key: bytes,
    ) -> None:
        prefs = await links.chat_preferences(message.chat.id)
        event_type = (command.args or "").strip().lower()
        if prefs is None:
            await answer(message, texts.STATUS_NOT_LINKED)
        elif not event_type:
            await show_settings(message, links, prefs, button_key)
        elif event_type not in MUTABLE_TYPES:
            await answer(message, texts.mute_usage(command.command, prefs.language))
        elif await allowed(message, bot, prefs.language):
            muted = command.command == "mute"
            changed = await links.change_chat_preferences(
                message.chat.id, lambda p: p.muting(event_type, muted)
            )
            if changed is None:
                await answer(message, texts.STATUS_NOT_LINKED)
            elif muted:
                await answer(message, texts.muted_reply(event_type, changed.language))
            else:
                await answer(message, texts.unmuted_reply(event_type, changed.language))

    router.callback_query()(presses.pressed)

    @router.message(F.migrate_to_chat_id)
    async def migrated(message: Message, links: LinkService) -> None:
        assert message.migrate_to_chat_id is not None
        await links.migrate_chat(message.chat.id, message.migrate_to_chat_id)

    @router.message(F.migrate_from_chat_id)
    async def migrated_here(message: Message, links: LinkService) -> None:
        # The supergroup's side of the same migration: whichever arrives first moves the links.
        assert message.migrate_from_chat_id is not None
        await links.migrate_chat(message.migrate_from_chat_id, message.chat.id)

    @router.my_chat_member(
        ChatMemberUpdatedFilter(member_status_changed=IS_MEMBER >> IS_NOT_MEMBER)
    )
    async def removed(event: ChatMemberUpdated, links: LinkService) -> None:
        # The user blocked the bot, or the bot left the group: stop sending until /start.
        await links.set_chat_enabled(event.chat.id, False)

    @router.message(F.chat.type == "private", F.text)
    async def other_text(message: Message) -> None:
        await answer(message, texts.HELP)

    @router.errors()
    async def failed(event: ErrorEvent) -> bool:
        message = event.update.message
        query = event.update.callback_query
        chat_id = message.chat.id if message is not None else None
        if query is not None and query.message is not None:
            chat_id = query.message.chat.id
        log.error(
            "bot update %s failed",
            event.update.update_id,
            exc_info=event.exception,
            extra={"chat": mask_chat_id(chat_id)},
        )
        try:
            if message is not None:
                await answer(message, TRY_AGAIN)
            elif query is not None:
                await query.answer(TRY_AGAIN)
        except TelegramAPIError as exc:
            log.warning("could not tell the chat about the failure: %s", exc.message)
        return True

    return router


def make_dispatcher(links: LinkService, token_ttl_seconds: int, button_key: bytes) -> Dispatcher:
    """The dispatcher with the linker's router and its workflow data."""
    dispatcher = Dispatcher(links=links, token_ttl_seconds=token_ttl_seconds, button_key=button_key)
    dispatcher.include_router(make_router())
    return dispatcher


async def set_commands(bot: Bot) -> None:
    """Publish the command menu; a failure only costs the menu, so it is logged."""
    commands = [BotCommand(command=c, description=d) for c, d in texts.COMMANDS.items()]
    try:
        await bot.set_my_commands(commands)
    except TelegramAPIError as exc:
        log.warning("setMyCommands failed: %s", exc.message)


def update_types(dispatcher: Dispatcher) -> list[str]:
    """The update types the handlers use (for getUpdates and setWebhook)."""
    used: Any = dispatcher.resolve_used_update_types()
    return sorted(used)
