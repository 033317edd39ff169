"""Settings of the operator commands that need more than the shared variables."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from shared.settings import BaseServiceSettings, require_url


class BrokerPermissionsSettings(BaseServiceSettings):
    """`sns-telegram broker-permissions` (services/ops/permissions.py)."""

    requires_telegram: ClassVar[bool] = False
    requires_database: ClassVar[bool] = False

    rabbitmq_management_url: str | None = None
    """RabbitMQ's management API; None: port 15672 of RABBITMQ_URL's host."""
    rabbitmq_publisher_user: str = Field(
        default="platform", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$"
    )
    rabbitmq_publisher_password: SecretStr | None = None
    """Creates the publisher account when it does not exist yet."""

    @field_validator("rabbitmq_management_url")
    @classmethod
    def _management_url(cls, value: str | None) -> str | None:
        if value is not None:
            require_url(value, ("http", "https"))
        return value
