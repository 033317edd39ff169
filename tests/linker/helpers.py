"""Helpers of the linker tests: their JWTs, a fake clock, settings, what the bot sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.internal_events import InternalPublisher, internal_events_key
from services.linker.settings import LinkerSettings
from services.standin.server import StandIn
from shared.contract import EventType, new_event
from tests.support import jwts

JWT_SECRET = "linker-tests-jwt-secret-0123456789abcdef"
BOT_API_KEY = "linker-tests-bot-api-key-0123456789abcdef"
"""LINKER_BOT_API_KEY of the test linkers: what a trusted bot sends as X-Bot-Api-Key."""
BOT_USERNAME = "piwpiwtelegrambot"
BOT_TOKEN = "42:linker-tests"
"""TELEGRAM_BOT_TOKEN of the test linkers (it keys the buttons and the internal events)."""
DEFAULT_PREFERENCES = {
    "muted_types": [],
    "quiet_hours": None,
    "language": "ko",
    "timezone": "UTC",
    "summary_time": "09:00",
    "silent_types": ["daily_summary"],
    "quiet_hours_mode": "hold",
    "link_previews": True,
    "post_images": True,
    "message_thread_id": None,
}
"""GET /api/telegram/preferences of a new link."""


def make_jwt(user_id: str | None, *, secret: str = JWT_SECRET, **options: Any) -> str:
    """A JWT for `user_id` signed like the platform's (HS256 with the test linkers' secret)."""
    return jwts.make_jwt(user_id, secret, **options)


def bearer(user_id: str, **claims: Any) -> dict[str, str]:
    """The Authorization header of a valid token for `user_id`."""
    return jwts.bearer(user_id, JWT_SECRET, **claims)


def bot_key(key: str = BOT_API_KEY) -> dict[str, str]:
    """The X-Bot-Api-Key header of the trusted bot that calls verify-link."""
    return {"X-Bot-Api-Key": key}


@dataclass
class FakeClock:
    """A clock the test moves by hand (link expiry, rate-limit windows) without sleeping."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def linker_settings(
    database_url: str, rabbitmq_url: str, api_base: str, **overrides: Any
) -> LinkerSettings:
    """Settings for a test linker (explicit values win over the environment)."""
    values: dict[str, Any] = {
        "app_env": "development",
        "database_url": database_url,
        "rabbitmq_url": rabbitmq_url,
        "telegram_api_base": api_base,
        "telegram_bot_username": BOT_USERNAME,
        "telegram_bot_token": BOT_TOKEN,
        "telegram_webhook_url": None,
        "telegram_webhook_secret": None,
        "jwt_secret": JWT_SECRET,
        "jwt_algorithms": ["HS256"],
        "jwt_audience": None,
        "jwt_issuer": None,
        "linker_bot_api_key": BOT_API_KEY,
        "chat_id_encryption_key": None,
        "log_format": "json",
    }
    values.update(overrides)
    return LinkerSettings(**values)


def bot_texts(standin: StandIn, chat_id: int) -> list[str]:
    """The texts the bot sent to `chat_id` in the stand-in, oldest first."""
    return [str(m["text"]) for m in standin.messages(chat_id, "bot")]


async def wait_for_bot_messages(
    standin: StandIn, chat_id: int, n: int, timeout: float = 10
) -> None:
    """Wait until the bot has sent at least `n` messages to `chat_id`."""
    await standin.wait_for(lambda: len(standin.messages(chat_id, "bot")) >= n, timeout)


async def publish_internal(
    rabbitmq_url: str,
    event_type: EventType,
    user_id: str,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
) -> None:
    """Publish an internal event as the notifier does: signed, on the internal exchange."""
    publisher = InternalPublisher(rabbitmq_url, internal_events_key(BOT_TOKEN))
    await publisher.connect()
    try:
        await publisher.publish(new_event(event_type, user_id, data, occurred_at=occurred_at))
    finally:
        await publisher.close()
