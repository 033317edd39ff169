"""LinkerSettings: a production run without its secrets is a startup error naming them."""

import pytest
from cryptography.fernet import Fernet

from services.linker.settings import LinkerSettings
from shared.settings import ConfigurationError

pytestmark = pytest.mark.unit

PRODUCTION = {
    "app_env": "production",
    "telegram_bot_token": "123:real-token",
    "chat_id_encryption_key": Fernet.generate_key().decode(),
    "rabbitmq_url": "amqp://linker:x7Qp2vR9sK4m@mq:5672/",
    "database_url": "postgresql://linker:x7Qp2vR9sK4m@db:5432/sns_telegram",
    "jwt_secret": "a-production-secret-of-32-bytes-or-more",
    "jwt_public_key": None,
    "jwt_algorithms": ["HS256"],
    "jwt_audience": "sns-frontend",
    "jwt_issuer": "sns-platform",
    "admin_jwt_audience": "sns-admin",
    "telegram_webhook_url": None,
    "telegram_webhook_secret": None,
}


def make(**values) -> LinkerSettings:
    return LinkerSettings(**(PRODUCTION | values))


def test_a_complete_production_configuration_is_accepted():
    make().validate_for_production()
    make(
        telegram_webhook_url="https://linker.sns-platform.net/telegram/webhook",
        telegram_webhook_secret="s3cret_-",
    ).validate_for_production()


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"jwt_secret": None}, "JWT_SECRET"),
        ({"jwt_secret": "short"}, "JWT_SECRET"),
        ({"jwt_algorithms": ["RS256"]}, "JWT_PUBLIC_KEY"),
        ({"telegram_webhook_url": "https://x.example/hook"}, "TELEGRAM_WEBHOOK_SECRET"),
        (
            {"telegram_webhook_url": "http://x.example/hook", "telegram_webhook_secret": "s"},
            "TELEGRAM_WEBHOOK_URL",
        ),
        ({"telegram_webhook_secret": "has spaces"}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"chat_id_encryption_key": None}, "CHAT_ID_ENCRYPTION_KEY"),
        ({"telegram_bot_token": None}, "TELEGRAM_BOT_TOKEN"),
    ],
)
def test_missing_or_unsafe_production_values_are_named(values, variable):
    with pytest.raises(ConfigurationError, match=variable):
        make(**values).validate_for_production()


def test_development_needs_no_webhook_secret_but_checks_its_format():
    dev = {"app_env": "development", "telegram_webhook_url": "http://localhost/hook"}
    make(**dev).validate_for_production()
    with pytest.raises(ConfigurationError, match="TELEGRAM_WEBHOOK_SECRET"):
        make(**dev, telegram_webhook_secret="no/slashes").validate_for_production()


def test_defaults():
    settings = LinkerSettings(_env_file=None)
    assert settings.linker_port == 8000
    assert settings.link_token_ttl_seconds == 900
    assert settings.jwt_user_claim == "sub"
    assert not settings.webhook_mode
