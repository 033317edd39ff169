"""Settings base shared by every service (docs/architecture.md, "Configuration").

Each service subclasses `BaseServiceSettings` and builds it in its composition root, never at
import time. Building it turns every invalid variable into a `ConfigurationError` whose one-line
message names the variable (never its value); `validate_for_production()` turns a missing secret,
or any placeholder the repository ships, into a startup error that names the variable and says why.

`APP_ENV` defaults to production: a forgotten variable must not switch every production check off.
Development (`sns-telegram dev`, compose, the tests) says `APP_ENV=development` explicitly.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from urllib.parse import unquote, urlsplit

from cryptography.fernet import Fernet
from pydantic import AfterValidator, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@localhost:5672/"
DEFAULT_DATABASE_URL = "postgresql://postgres@localhost:5432/sns_telegram"
TELEGRAM_API_DEFAULT = "https://api.telegram.org"

# --- What a placeholder is: the one declaration every production check uses ----------------------

PLACEHOLDER_MARKERS = (
    "change-me",
    "changeme",
    "change_me",
    "dev-only",
    "dev_only",
    "placeholder",
    "example",
    "stand-in",
    "standin",
    "not-real",
)
"""Words that mark a value as a stand-in to replace, in any setting (case-insensitive). Long
enough that a random key practically never contains one."""

KNOWN_PLACEHOLDERS = frozenset(
    {
        "guest",  # RabbitMQ's default account (amqp://guest:guest@...)
        "postgres",
        "password",
        "pass",
        "secret",
        "admin",
        "user",
        "token",
        "1:local-stand-in",  # the stand-in's bot token (services/common/telegram.py)
    }
)
"""Whole secret values that are documentation or well-known defaults (case-insensitive)."""

_TEMPLATE = re.compile(r"<[^<>]*>|\{\{.*\}\}|\$\{.*\}|\$[A-Z_]+")
_DEVELOPMENT_DEFAULTS = {
    "rabbitmq_url": "the default guest account on localhost is for development",
    "database_url": "the default passwordless postgres on localhost is for development",
}


def placeholder_reason(value: str, *, secret: bool = True) -> str | None:
    """Why `value` is a placeholder (a value the repository ships as an example, a template word
    or a well-known default), or None. Non-secret settings are checked for the markers only."""
    lowered = value.strip().lower()
    for marker in PLACEHOLDER_MARKERS:
        if marker in lowered:
            return f"it contains '{marker}'"
    if not secret:
        return None
    if lowered in KNOWN_PLACEHOLDERS:
        return "it is a well-known default or documentation value"
    if not any(character.isalnum() for character in value):
        return "it is not a value (only punctuation)"
    if _TEMPLATE.fullmatch(value.strip()):
        return "it is a template word"
    url = _url_parts(value)
    if url is not None and url[1] is not None:
        reason = placeholder_reason(url[1])
        if reason is not None:
            return f"its password is a placeholder ({reason})"
    return None


def is_placeholder(value: str, *, secret: bool = True) -> bool:
    """True when production must refuse `value` (see `placeholder_reason`)."""
    return placeholder_reason(value, secret=secret) is not None


def _url_parts(value: str) -> tuple[str, str | None] | None:
    """(scheme, password) of a `scheme://user:password@host/...` value, else None."""
    if "://" not in value:
        return None
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return None
    return parts.scheme, (unquote(password) if password is not None else None)


# --- The settings base ---------------------------------------------------------------------------


class AppEnv(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigurationError(RuntimeError):
    """A setting is missing, invalid or unsafe; the one-line message names the variable."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_BOT_TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{1,200}$")
_BOT_USERNAME = re.compile(r"^@?[A-Za-z0-9_]{1,64}$")


def must_match(pattern: re.Pattern[str], message: str) -> AfterValidator:
    """For a setting's `Annotated[...]`: unset, or its value (a secret's too) matches `pattern`;
    else it is invalid, saying `message`."""

    def check(value: SecretStr | str | None) -> SecretStr | str | None:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is not None and not pattern.match(text):
            raise ValueError(message)
        return value

    return AfterValidator(check)


BotToken = Annotated[
    SecretStr | None,
    must_match(_BOT_TOKEN, "must be a bot token from @BotFather (digits, ':', A-Z a-z 0-9 _ -)"),
]
"""TELEGRAM_BOT_TOKEN: unset, or as @BotFather gives it."""
BotUsername = Annotated[
    str | None,
    must_match(_BOT_USERNAME, "must be a Telegram username (A-Z a-z 0-9 _, optionally after @)"),
]
"""TELEGRAM_BOT_USERNAME: unset, or a Telegram username."""


def variable_name(cls: type[BaseSettings], field: str) -> str:
    """The environment variable that sets `field` of `cls`."""
    info = cls.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias.upper()
    return (str(cls.model_config.get("env_prefix") or "") + field).upper()


def describe_invalid(cls: type[BaseSettings], error: ValidationError) -> str:
    """One line naming each invalid variable and what is wrong, never the value it had."""
    parts = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        loc = item["loc"]
        field = str(loc[0]) if loc else ""
        name = variable_name(cls, field) if field in cls.model_fields else field.upper()
        message = " ".join(str(item["msg"]).removeprefix("Value error, ").split())
        # A check across variables (no location) names its variables in its own message.
        parts.append(f"{name}: {message}" if name else message)
    return "; ".join(parts)


class BaseServiceSettings(BaseSettings):
    """Variables every service reads, with the names and defaults of deploy/.env.example."""

    model_config = SettingsConfigDict(
        env_file=None,
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
        allow_inf_nan=False,  # "inf" or "nan" is never a rate, a timeout or a size
    )

    requires_telegram: ClassVar[bool] = True
    """Whether a production run needs TELEGRAM_BOT_TOKEN and CHAT_ID_ENCRYPTION_KEY."""
    requires_database: ClassVar[bool] = True
    """Whether a production run needs DATABASE_URL."""

    app_env: AppEnv = AppEnv.PRODUCTION
    log_level: str = "INFO"
    log_format: str = "json"

    rabbitmq_url: SecretStr = SecretStr(DEFAULT_RABBITMQ_URL)
    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)

    telegram_bot_token: BotToken = None
    telegram_api_base: str = TELEGRAM_API_DEFAULT
    telegram_bot_username: BotUsername = None

    chat_id_encryption_key: SecretStr | None = None

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(describe_invalid(type(self), exc)) from None

    @field_validator("app_env", mode="before")
    @classmethod
    def _env_name(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ("json", "console"):
            raise ValueError("must be 'json' or 'console'")
        return value

    @field_validator("rabbitmq_url")
    @classmethod
    def _amqp_url(cls, value: SecretStr) -> SecretStr:
        require_url(value.get_secret_value(), ("amqp", "amqps"))
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        require_url(value.get_secret_value(), ("postgresql", "postgresql+psycopg", "postgres"))
        return value

    @field_validator("telegram_api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        require_url(value, ("http", "https"))
        return value

    @field_validator("chat_id_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        for key in keys:
            try:
                Fernet(key.encode())
            except (ValueError, TypeError):
                raise ValueError(
                    "must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated, "
                    "newest first"
                ) from None
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

    def production_problems(self) -> list[str]:
        """What a production run lacks or must not use, each naming its variable and why.
        Subclasses extend it (super() first)."""
        problems = []
        if self.requires_telegram:
            if self.telegram_bot_token is None:
                problems.append("TELEGRAM_BOT_TOKEN is required")
            if not self.encryption_keys():
                problems.append("CHAT_ID_ENCRYPTION_KEY is required")
        for field, why in _DEVELOPMENT_DEFAULTS.items():
            if field == "database_url" and not self.requires_database:
                continue
            if field not in self.model_fields_set or _is_default(self, field):
                problems.append(f"{variable_name(type(self), field)} must be set ({why})")
        problems.extend(self.placeholder_problems())
        return problems

    def placeholder_problems(self) -> list[str]:
        """Every setting, of this class and its subclasses, whose value is a placeholder."""
        problems = []
        for field in type(self).model_fields:
            value = getattr(self, field)
            if isinstance(value, SecretStr):
                reason = placeholder_reason(value.get_secret_value(), secret=True)
            elif isinstance(value, str):
                reason = placeholder_reason(value, secret=False)
            else:
                continue
            if reason is not None and not _is_default(self, field):
                name = variable_name(type(self), field)
                problems.append(f"{name} is a placeholder ({reason}): set a real value")
        return problems

    def validate_for_production(self) -> None:
        """Raise `ConfigurationError` naming every variable a production run lacks or must not
        use; nothing in development."""
        if not self.is_production:
            return
        problems = self.production_problems()
        if problems:
            raise ConfigurationError("APP_ENV=production: " + "; ".join(problems))


def _is_default(settings: BaseServiceSettings, field: str) -> bool:
    default = type(settings).model_fields[field].get_default(call_default_factory=True)
    value = getattr(settings, field)
    if isinstance(value, SecretStr) and isinstance(default, SecretStr):
        return value.get_secret_value() == default.get_secret_value()
    return bool(value == default)


def require_url(value: str, schemes: tuple[str, ...]) -> None:
    """Raise ValueError (naming the schemes, not the value) unless `value` is such a URL."""
    expected = f"must be a URL with a host, starting with {' or '.join(f'{s}://' for s in schemes)}"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (parses the port: "host:abc" or 99999 raise ValueError)
    except ValueError:
        raise ValueError(expected) from None
    if parts.scheme not in schemes or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(expected)
