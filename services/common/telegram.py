"""Building the aiogram Bot every service uses, pointed at TELEGRAM_API_BASE."""

from __future__ import annotations

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode

from shared.settings import BaseServiceSettings, ConfigurationError

DEV_BOT_TOKEN = "1:local-stand-in"  # noqa: S105 (not a secret: the stand-in accepts any token)
"""The token used against the local stand-in when TELEGRAM_BOT_TOKEN is unset in development."""


def bot_token(settings: BaseServiceSettings) -> str:
    """The bot token to use; in development without one, the stand-in's placeholder."""
    if settings.telegram_bot_token is not None:
        return settings.telegram_bot_token.get_secret_value()
    if settings.is_production:
        raise ConfigurationError("TELEGRAM_BOT_TOKEN is required when APP_ENV=production")
    return DEV_BOT_TOKEN


def make_bot(settings: BaseServiceSettings, *, timeout: float = 10.0, limit: int = 100) -> Bot:
    """An aiogram Bot talking HTML parse mode to TELEGRAM_API_BASE."""
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_base.rstrip("/")),
        limit=limit,
        timeout=timeout,
    )
    return Bot(
        token=bot_token(settings),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
