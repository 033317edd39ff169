"""Settings base shared by every service (DESIGN.md section 3).

Each service subclasses `BaseServiceSettings` and builds it in its composition root, never at
import time. `validate_for_production()` turns a missing or default secret into a startup error
that names the variable.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@localhost:5672/"
DEFAULT_DATABASE_URL = "postgresql://postgres@localhost:5432/sns_telegram"
TELEGRAM_API_DEFAULT = "https://api.telegram.org"


class AppEnv(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigurationError(RuntimeError):
    """A setting is missing or unsafe; the message names the variable."""


class BaseServiceSettings(BaseSettings):
    """Variables every service reads, with DESIGN.md's names and defaults."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    app_env: AppEnv = AppEnv.DEVELOPMENT
    log_level: str = "INFO"
    log_format: str = "json"

    rabbitmq_url: SecretStr = SecretStr(DEFAULT_RABBITMQ_URL)
    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)

    telegram_bot_token: SecretStr | None = None
    telegram_api_base: str = TELEGRAM_API_DEFAULT
    telegram_bot_username: str | None = None

    chat_id_encryption_key: SecretStr | None = None

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ("json", "console"):
            raise ValueError("LOG_FORMAT must be 'json' or 'console'")
        return value

    @property
    def is_production(self) -> bool:
        return self.app_env is AppEnv.PRODUCTION

    def encryption_keys(self) -> list[str]:
        """CHAT_ID_ENCRYPTION_KEY split into keys, newest first."""
        if self.chat_id_encryption_key is None:
            return []
        raw = self.chat_id_encryption_key.get_secret_value()
        return [k.strip() for k in raw.split(",") if k.strip()]

    def validate_for_production(self) -> None:
        """Raise `ConfigurationError` naming each secret a production run lacks."""
        if not self.is_production:
            return
        problems = []
        if self.telegram_bot_token is None:
            problems.append("TELEGRAM_BOT_TOKEN is required")
        if not self.encryption_keys():
            problems.append("CHAT_ID_ENCRYPTION_KEY is required")
        if self.rabbitmq_url.get_secret_value() == DEFAULT_RABBITMQ_URL:
            problems.append(
                "RABBITMQ_URL must be set (the default guest account is for development)"
            )
        if problems:
            raise ConfigurationError("APP_ENV=production: " + "; ".join(problems))
