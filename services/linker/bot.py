"""The bot side of linking: aiogram handlers for the chat's commands, and the Telegram adapters.

Handlers receive the `LinkService` as aiogram workflow data (`links`), never from a global.
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
from services.linker import texts
from services.linker.service import (
    BotUnavailable,
    BotUsername,
    ChatOutcome,
    LinkService,
    SendRefused,
)

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
    """The bot's username: TELEGRAM_BOT_USERNAME, else asked once with getMe (then cached)."""

    async def username() -> str:
        if configured:
            return configured.removeprefix("@")
        try:
            me = await bot.me()  # aiogram caches the answer
        except TelegramAPIError as exc:
            log.warning("getMe failed: %s", type(exc).__name__)
            raise BotUnavailable("the bot's username is unknown; try again shortly") from None
        if not me.username:
            raise BotUnavailable("the bot has no username")
        return me.username

    return username


async def answer(message: Message, text: str) -> None:
    """Reply in the message's chat (plain text: our texts carry no markup)."""
    await message.answer(text, parse_mode=None)


def make_router() -> Router:
    """The handlers of `/start TOKEN`, `/start`, `/status`, `/stop`, `/help` and chat changes."""
    router = Router(name="linker")

    @router.message(CommandStart(deep_link=True))
    async def start_with_token(
        message: Message, command: CommandObject, links: LinkService
    ) -> None:
        outcome, problem = await links.redeem_in_chat(
            command.args or "", message.chat.id, message.chat.type
        )
        if outcome is ChatOutcome.LINKED:
            await answer(message, texts.LINKED)
        elif outcome is ChatOutcome.ALREADY_LINKED:
            await answer(message, texts.ALREADY_LINKED)
        else:
            assert problem is not None
            await answer(message, texts.TOKEN_REFUSED[problem])

    @router.message(CommandStart())
    async def start(message: Message, links: LinkService, token_ttl_seconds: int) -> None:
        # Unblocking the bot ("Restart") sends a bare /start: that resumes a paused link.
        if await links.set_chat_enabled(message.chat.id, True):
            await answer(message, texts.RESUMED)
        elif await links.chat_links(message.chat.id):
            await answer(message, texts.ALREADY_LINKED)
        else:
            await answer(message, texts.welcome(token_ttl_seconds))

    @router.message(Command("status"))
    async def status(message: Message, links: LinkService) -> None:
        found = await links.chat_links(message.chat.id)
        if not found:
            await answer(message, texts.STATUS_NOT_LINKED)
        elif any(link.enabled for link in found):
            await answer(message, texts.STATUS_LINKED)
        else:
            await answer(message, texts.STATUS_PAUSED)

    @router.message(Command("stop"))
    async def stop(message: Message, links: LinkService) -> None:
        removed = await links.stop_chat(message.chat.id)
        await answer(message, texts.STOPPED if removed else texts.STOP_NOT_LINKED)

    @router.message(Command("help"))
    async def help_(message: Message) -> None:
        await answer(message, texts.HELP)

    @router.message(F.migrate_to_chat_id)
    async def migrated(message: Message, links: LinkService) -> None:
        assert message.migrate_to_chat_id is not None
        await links.migrate_chat(message.chat.id, message.migrate_to_chat_id)

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
        chat = mask_chat_id(message.chat.id) if message is not None else None
        log.error(
            "bot update %s failed",
            event.update.update_id,
            exc_info=event.exception,
            extra={"chat": chat},
        )
        if message is not None:
            try:
                await answer(message, TRY_AGAIN)
            except TelegramAPIError as exc:
                log.warning("could not tell the chat about the failure: %s", exc.message)
        return True

    return router


def make_dispatcher(links: LinkService, token_ttl_seconds: int) -> Dispatcher:
    """The dispatcher with the linker's router and its workflow data."""
    dispatcher = Dispatcher(links=links, token_ttl_seconds=token_ttl_seconds)
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
