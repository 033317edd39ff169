"""Complete, valid production configurations of every service's settings, for tests that change
one variable and look at what production validation says.

The values are derived (not literals that look like secrets) and contain no placeholder.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from pydantic import SecretStr

from services.linker.settings import LinkerSettings
from services.notifier.settings import NotifierSettings
from services.scheduler.settings import SchedulerSettings
from shared.settings import BaseServiceSettings, variable_name


def _derived(label: str) -> str:
    return hashlib.sha256(f"sns-telegram tests {label}".encode()).hexdigest()


FERNET_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"tests fernet").digest()).decode()
PASSWORD = _derived("password")[:24]

PRODUCTION: dict[str, Any] = {
    "app_env": "production",
    "rabbitmq_url": f"amqps://sns:{PASSWORD}@mq.internal:5671/sns",
    "database_url": f"postgresql://sns:{PASSWORD}@db.internal:5432/sns_telegram?sslmode=require",
    "telegram_bot_token": f"123456789:{_derived('bot')[:35]}",
    "chat_id_encryption_key": FERNET_KEY,
    "jwt_secret": _derived("jwt"),
    "jwt_public_key": None,
    "jwt_algorithms": ["HS256"],
    "jwt_audience": "sns-frontend",
    "jwt_issuer": "https://auth.sns.internal",
    "admin_jwt_audience": "sns-admin",
    "telegram_webhook_url": None,
    "telegram_webhook_secret": None,
}

SERVICE_SETTINGS: dict[str, type[BaseServiceSettings]] = {
    "notifier": NotifierSettings,
    "linker": LinkerSettings,
    "scheduler": SchedulerSettings,
}


def production(cls: type[BaseServiceSettings], **overrides: Any) -> BaseServiceSettings:
    """`cls` with a complete production configuration, `overrides` (field names) on top."""
    values = {k: v for k, v in (PRODUCTION | overrides).items() if k in cls.model_fields}
    return cls(_env_file=None, **values)


def secret_variables() -> dict[str, tuple[type[BaseServiceSettings], str]]:
    """Every variable a settings class reads as a secret (SecretStr) -> (a class, its field)."""
    found: dict[str, tuple[type[BaseServiceSettings], str]] = {}
    for cls in SERVICE_SETTINGS.values():
        for field, info in cls.model_fields.items():
            if SecretStr in (getattr(info.annotation, "__args__", ()) or (info.annotation,)):
                found.setdefault(variable_name(cls, field), (cls, field))
    return found
