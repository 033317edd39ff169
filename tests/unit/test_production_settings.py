"""Production refuses what only development may use: missing secrets, the development defaults,
every placeholder, and a JWT configuration without audiences and issuer. APP_ENV defaults to
production, so forgetting it switches nothing off."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from services.common.telegram import DEV_BOT_TOKEN
from shared.settings import (
    KNOWN_PLACEHOLDERS,
    PLACEHOLDER_MARKERS,
    AppEnv,
    ConfigurationError,
    is_placeholder,
    placeholder_reason,
)
from tests.configs import PASSWORD, SERVICE_SETTINGS, production, secret_variables

pytestmark = pytest.mark.unit

SERVICES = list(SERVICE_SETTINGS.values())


def refusal(cls, **overrides) -> str:
    """The production error of `cls` with `overrides`, which must be refused."""
    with pytest.raises(ConfigurationError) as caught:
        production(cls, **overrides).validate_for_production()
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("cls", SERVICES, ids=lambda c: c.__name__)
def test_a_complete_production_configuration_is_accepted(cls):
    settings = production(cls)
    assert settings.is_production
    settings.validate_for_production()


@pytest.mark.parametrize("cls", SERVICES, ids=lambda c: c.__name__)
def test_app_env_unset_means_production(cls, monkeypatch):
    monkeypatch.delenv("APP_ENV", raising=False)
    settings = cls(_env_file=None)
    assert settings.app_env is AppEnv.PRODUCTION
    with pytest.raises(ConfigurationError) as caught:
        settings.validate_for_production()
    assert "RABBITMQ_URL must be set" in str(caught.value)
    assert "DATABASE_URL must be set" in str(caught.value)


@pytest.mark.parametrize("value", ["development", "Development", " DEVELOPMENT "])
def test_development_is_said_in_any_case(value, monkeypatch):
    monkeypatch.setenv("APP_ENV", value)
    assert SERVICE_SETTINGS["scheduler"](_env_file=None).app_env is AppEnv.DEVELOPMENT


def test_a_misspelt_app_env_is_an_error_not_development(monkeypatch):
    monkeypatch.setenv("APP_ENV", "prod")
    with pytest.raises(ConfigurationError, match="APP_ENV"):
        SERVICE_SETTINGS["scheduler"](_env_file=None)


PLACEHOLDERS = [
    "change-me",
    "CHANGEME",
    "change-me-dev-only-jwt-secret-0123456789",
    "dev-only-jwt-secret-change-me-0123456789",
    "placeholder-value-0123456789abcdef0123456789",
    "an-example-secret-0123456789abcdef0123456789",
    "guest",
    "password",
    "...",
    "<your token>",
    "${JWT_SECRET}",
]


@pytest.mark.parametrize("value", PLACEHOLDERS)
@pytest.mark.parametrize("variable", sorted(secret_variables()))
def test_every_secret_refuses_every_placeholder(variable, value):
    cls, field = secret_variables()[variable]
    if field in ("rabbitmq_url", "database_url"):
        scheme = "amqps" if field == "rabbitmq_url" else "postgresql"
        value = f"{scheme}://sns:{value}@host.internal:5432/db"
    message = refusal(cls, **{field: value})
    assert variable in message
    if value.lower() not in PLACEHOLDER_MARKERS:  # a marker is named as the reason
        assert value not in message  # says which variable and why, never the value


def test_the_stand_ins_bot_token_is_refused():
    assert is_placeholder(DEV_BOT_TOKEN)
    for cls in (SERVICE_SETTINGS["notifier"], SERVICE_SETTINGS["linker"]):
        assert "TELEGRAM_BOT_TOKEN is a placeholder" in refusal(
            cls, telegram_bot_token=DEV_BOT_TOKEN
        )


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("rabbitmq_url", "amqp://guest:guest@rabbitmq.internal:5672/"),
        ("rabbitmq_url", "amqp://sns:change-me@rabbitmq:5672/"),
        ("database_url", "postgresql://sns:change-me@postgres:5432/sns_telegram"),
        ("database_url", "postgresql://postgres:postgres@db:5432/sns_telegram"),
        ("rabbitmq_url", "amqps://CHANGE-ME-USER:s3cure@rabbitmq.example.internal:5671/sns"),
    ],
)
def test_urls_with_placeholder_accounts_or_hosts_are_refused(field, url):
    assert field.upper() in refusal(SERVICE_SETTINGS["scheduler"], **{field: url})


@pytest.mark.parametrize("field", ["rabbitmq_url", "database_url"])
def test_the_development_default_urls_are_refused(field):
    cls = SERVICE_SETTINGS["notifier"]
    default = cls.model_fields[field].get_default()
    assert isinstance(default, SecretStr)
    message = refusal(cls, **{field: default.get_secret_value()})
    assert f"{field.upper()} must be set" in message


def test_a_placeholder_webhook_url_is_refused():
    linker = SERVICE_SETTINGS["linker"]
    message = refusal(
        linker,
        telegram_webhook_url="https://telegram.example.com/telegram/webhook",
        telegram_webhook_secret="s3cret_-webhook",
    )
    assert "TELEGRAM_WEBHOOK_URL is a placeholder" in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"jwt_audience": None}, "JWT_AUDIENCE is required"),
        ({"jwt_issuer": None}, "JWT_ISSUER is required"),
        ({"admin_jwt_audience": None}, "ADMIN_JWT_AUDIENCE is required"),
        ({"admin_jwt_audience": "sns-frontend"}, "ADMIN_JWT_AUDIENCE must differ"),
    ],
)
@pytest.mark.parametrize("service", ["linker", "scheduler"])
def test_production_requires_audiences_and_issuer(service, overrides, expected):
    assert expected in refusal(SERVICE_SETTINGS[service], **overrides)


def test_every_problem_is_named_at_once():
    message = refusal(
        SERVICE_SETTINGS["linker"],
        telegram_bot_token=None,
        jwt_secret="change-me",
        jwt_issuer=None,
        rabbitmq_url="amqp://sns:change-me@rabbitmq:5672/",
    )
    for variable in ("TELEGRAM_BOT_TOKEN", "JWT_SECRET", "JWT_ISSUER", "RABBITMQ_URL"):
        assert variable in message


def test_development_accepts_the_placeholders_it_ships():
    dev = production(
        SERVICE_SETTINGS["linker"],
        app_env="development",
        jwt_secret="change-me-dev-only-jwt-secret-0123456789",
        rabbitmq_url="amqp://guest:guest@localhost:5672/",
        jwt_audience=None,
        jwt_issuer=None,
        admin_jwt_audience=None,
    )
    dev.validate_for_production()


def test_the_declaration_is_not_trigger_happy():
    # Real secrets are long random strings: none of these is a placeholder.
    for value in (PASSWORD, os.urandom(32).hex(), "Zq8-vR2_kLm9pXw4Ty7bNc3s"):
        assert placeholder_reason(value) is None
    assert all(len(marker) >= 7 for marker in PLACEHOLDER_MARKERS)
    assert "guest" in KNOWN_PLACEHOLDERS
