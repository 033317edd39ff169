"""The linker's settings (docs/architecture.md, "Configuration"), built in its composition root."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, SecretStr

from services.common.auth import JwtSettings
from shared.settings import ConfigurationError, must_match

_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
"""What Telegram accepts as `secret_token`."""
_BOT_API_KEY = re.compile(r"^[!-~]{32,256}$")
"""32-256 visible ASCII characters: long enough not to be guessed, and sendable in a header."""
BotApiKey = Annotated[
    SecretStr | None,
    must_match(_BOT_API_KEY, "must be 32-256 visible ASCII characters (no spaces)"),
]


class LinkerSettings(JwtSettings):
    """Every variable the linker reads."""

    linker_host: str = "0.0.0.0"
    linker_port: int = Field(default=8000, ge=0, le=65535)
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    link_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    test_messages_per_minute: int = Field(default=3, ge=1, le=60)
    linker_prefetch: int = Field(default=16, ge=1, le=1000)
    linker_bot_api_key: BotApiKey = None
    """The key a trusted bot that runs elsewhere sends as `X-Bot-Api-Key` to call verify-link;
    unset: verify-link is disabled (our own bot links chats through `/start TOKEN`)."""

    @property
    def webhook_mode(self) -> bool:
        """True when updates arrive by webhook rather than long polling."""
        return bool(self.telegram_webhook_url)

    def webhook_problems(self) -> list[str]:
        """What is wrong with the webhook variables, each naming its variable."""
        problems = []
        secret = self.telegram_webhook_secret
        if secret is not None and not _WEBHOOK_SECRET.match(secret.get_secret_value()):
            problems.append("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -")
        if self.webhook_mode and secret is None and self.is_production:
            problems.append("TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_WEBHOOK_URL is set")
        url = self.telegram_webhook_url or ""
        if self.webhook_mode and self.is_production and not url.startswith("https://"):
            problems.append("TELEGRAM_WEBHOOK_URL must be an https:// URL")
        return problems

    def validate_for_production(self) -> None:
        """Raise `ConfigurationError` naming every missing or unsafe variable."""
        problems = []
        try:
            super().validate_for_production()
        except ConfigurationError as exc:
            problems.append(str(exc))
        problems.extend(self.webhook_problems())
        if problems:
            raise ConfigurationError("; ".join(problems))
