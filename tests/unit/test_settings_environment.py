"""The environment boundary: whatever the environment holds, each service's settings are either
usable (the pieces the service builds from them at start-up do not fail) or a one-line
`ConfigurationError` naming the variable, never its value."""

from __future__ import annotations

import logging
import math
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import annotated_types
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pamqp import commands, frame
from pamqp.encode import field_table
from pydantic import SecretStr

from services.common.auth import JwtSettings, make_verifier
from services.common.callbacks import callback_key
from services.common.chat_ids import ChatIdCipher
from services.common.telegram import bot_token, make_bot
from services.notifier.processor import exposure_bound
from services.notifier.ratelimit import RateLimiter
from services.notifier.topology import notifier_queue
from services.scheduler.main import job_config
from services.scheduler.retention import rules
from services.scheduler.retention_settings import RetentionSettings
from services.scheduler.settings import SchedulerSettings
from services.scheduler.upkeep import slot_of
from shared.settings import BaseServiceSettings, ConfigurationError, variable_name
from tests.configs import SERVICE_SETTINGS

pytestmark = pytest.mark.unit

GARBAGE = [
    "", " ", "0", "-1", "-0.5", "1e309", "-1e309", "nan", "inf", "-inf", "1e30", "99999999999",
    str(2**70), "abc", "true", "yes", "null", "None", "http://", "amqp://", "https://x y",
    "postgresql://", "://", "@", "a:b@c", "😀", "ñandú", "\u200b", "\t", "0x10", "1_000",
    "HS256,", ",", "none", "-----BEGIN PUBLIC KEY-----", "1:2", "production ", "DEVELOPMENT",
]  # fmt: skip
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)


def _bounds(info: Any) -> tuple[float | None, float | None]:
    low = high = None
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge | annotated_types.Gt):
            low = item.ge if isinstance(item, annotated_types.Ge) else item.gt
        if isinstance(item, annotated_types.Le | annotated_types.Lt):
            high = item.le if isinstance(item, annotated_types.Le) else item.lt
    return low, high


def allowed(cls: type[BaseServiceSettings], field: str) -> st.SearchStrategy[str]:
    """Values the field's type allows (before our constraints): what an operator might set."""
    info = cls.model_fields[field]
    annotation = info.annotation
    low, high = _bounds(info)
    if annotation is bool:
        return st.sampled_from(["true", "false", "1", "0", "yes", "no", "on", "off"])
    if annotation is int:
        lo = int(low) - 5 if low is not None else -(10**12)
        hi = int(high) + 5 if high is not None else 10**12
        return st.integers(lo, hi).map(str)
    if annotation is float:
        near = st.floats(
            min_value=(low - 5) if low is not None else None,
            max_value=(high + 5) if high is not None else None,
        )
        return (near | st.floats()).map(repr)  # st.floats(): also nan, inf, -inf
    if field.endswith("_url") or field == "telegram_api_base":
        scheme = st.sampled_from(["amqp", "amqps", "postgresql", "postgres", "http", "https"])
        return st.builds(
            lambda s, u, p, h: f"{s}://{u}:{p}@{h}:5672/x", scheme, TEXT, TEXT, TEXT
        ) | st.sampled_from(["amqp://u:p@mq:5672/", "postgresql://u@db/sns", "https://api.x"])
    if field == "app_env":
        return st.sampled_from(["development", "production", "Production", "staging", "dev"])
    if field == "jwt_algorithms":
        return st.lists(
            st.sampled_from(["HS256", "RS256", "ES256", "none", "hs256", ""]), max_size=3
        ).map(",".join)
    return TEXT


@st.composite
def environments(draw: st.DrawFn, cls: type[BaseServiceSettings]) -> dict[str, str]:
    fields = draw(st.lists(st.sampled_from(sorted(cls.model_fields)), unique=True, max_size=6))
    return {
        variable_name(cls, field): draw(allowed(cls, field) | st.sampled_from(GARBAGE) | TEXT)
        for field in fields
    }


def build(cls: type[BaseServiceSettings], env: dict[str, str]) -> BaseServiceSettings:
    """`cls` from exactly `env`: the process environment without the variables the class reads,
    except APP_ENV=development (the test session's), then `env`."""
    ours = {variable_name(cls, field) for field in cls.model_fields} - {"APP_ENV"}
    base = {k: v for k, v in os.environ.items() if k.upper() not in ours}  # development
    with patch.dict(os.environ, base | env, clear=True):
        return cls(_env_file=None)


def assert_names_a_variable(message: str, cls: type[BaseServiceSettings]) -> None:
    assert "\n" not in message and "Traceback" not in message
    names = {variable_name(cls, field) for field in cls.model_fields}
    assert any(re.search(rf"\b{name}\b", message) for name in names), message


def use(settings: BaseServiceSettings) -> None:
    """What the service builds from its settings before connecting anything."""
    logging.getLogger("tests.settings-environment").setLevel(settings.log_level)
    token = bot_token(settings)
    callback_key(token)
    make_bot(settings, timeout=1)
    ChatIdCipher(settings.encryption_keys())
    if isinstance(settings, JwtSettings):
        make_verifier(settings)
        make_verifier(settings, admin=True)
    if isinstance(settings, SchedulerSettings):
        config = job_config(settings, "test")
        assert config.tick.total_seconds() > 0 and config.catch_up.total_seconds() >= 0
        # The day a daily report covers is still there when the report is built.
        assert settings.retention_activity_days * 24 >= 48 + settings.summary_catch_up_hours
    if isinstance(settings, RetentionSettings):
        now = datetime.now(UTC)
        assert settings.prune_interval >= timedelta(minutes=1)
        assert slot_of(now, settings.prune_interval) <= now
        for rule in rules(settings):
            assert timedelta(hours=1) <= rule.keep <= timedelta(days=3650), rule.table
            now - rule.keep  # a cutoff PostgreSQL can compare (no overflow)
        deliveries = settings.retention_deliveries_days
        assert deliveries >= settings.retention_processed_events_days >= 3  # idempotency window
    if isinstance(settings, SERVICE_SETTINGS["notifier"]):
        limits = settings.limits()  # type: ignore[attr-defined]
        rates = (limits.global_per_second, limits.per_chat_per_second, limits.per_group_per_minute)
        assert all(math.isfinite(rate) and rate >= 0 for rate in rates)  # 0 = unlimited
        RateLimiter(limits, exposure=exposure_bound(limits.global_per_second))
        prefetch = settings.notifier_prefetch  # type: ignore[attr-defined]
        frame.marshal(commands.Basic.Qos(prefetch_count=prefetch), 1)  # an AMQP short
        field_table(notifier_queue(settings.notifier_delivery_limit).arguments)  # type: ignore[attr-defined]
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            if name.endswith("_seconds"):
                assert 0 <= value <= 86_400, name  # a timeout or an interval, never "forever"
            if name.endswith("_ms"):
                assert 0 <= value <= 86_400_000, name


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@example(data={"TELEGRAM_RATE_GLOBAL": "inf"})
@example(data={"TELEGRAM_RATE_PER_CHAT": "-1"})
@example(data={"NOTIFIER_PREFETCH": "70000"})
@example(data={"NOTIFIER_DELIVERY_LIMIT": str(2**70)})
@example(data={"NOTIFIER_RELEASE_INTERVAL_SECONDS": "1e300"})
@example(data={"LOG_LEVEL": "verbose"})
@example(data={"TELEGRAM_BOT_TOKEN": "not a token"})
@example(data={"TELEGRAM_API_BASE": "api.telegram.org"})
@example(data={"RABBITMQ_URL": "garbage"})
@example(data={"DATABASE_URL": "postgresql://u:p@db:99999/x"})
@example(data={"CHAT_ID_ENCRYPTION_KEY": "not-a-fernet-key"})
@example(data={"JWT_LEEWAY_SECONDS": "nan"})
@example(data={"APP_ENV": "prod"})
@example(data={"SCHEDULER_HOST": "bad host"})
@example(data={"SCHEDULER_TICK_SECONDS": "3.7e-156"})  # a tick of 0 once it is a timedelta
@example(data={"RETENTION_ACTIVITY_DAYS": "2"})  # with the 6-hour catch-up, a report's day is gone
@example(data={"RETENTION_DELIVERIES_DAYS": "3"})  # fewer days than the idempotency keys
@example(data={"RETENTION_PROCESSED_EVENTS_DAYS": "1e-300"})
@example(data={"PRUNE_INTERVAL_MINUTES": "inf", "PRUNE_BATCH_SIZE": "0"})
def test_any_environment_gives_usable_settings_or_names_the_variable(service, data):
    cls = SERVICE_SETTINGS[service]
    env = data if isinstance(data, dict) else data.draw(environments(cls), label="environment")
    try:
        built = build(cls, env)
        built.validate_for_production()
        use(built)
    except ConfigurationError as exc:
        assert_names_a_variable(str(exc), cls)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@example(data={"RETENTION_LINK_TOKENS_HOURS": "0.5"})
@example(data={"RETENTION_JOB_RUNS_DAYS": "1e400"})
def test_any_environment_gives_sns_telegram_prune_usable_settings_or_names_the_variable(data):
    env = (
        data if isinstance(data, dict) else data.draw(environments(RetentionSettings), label="env")
    )
    try:
        use(build(RetentionSettings, env))
    except ConfigurationError as exc:
        assert_names_a_variable(str(exc), RetentionSettings)


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_an_invalid_secret_or_url_is_named_but_never_echoed(service):
    cls = SERVICE_SETTINGS[service]
    sentinel = f"zz{uuid.uuid4().hex}"
    for field, info in cls.model_fields.items():
        secret = SecretStr in (getattr(info.annotation, "__args__", ()) or (info.annotation,))
        if not (secret or field.endswith("_url") or field == "telegram_api_base"):
            continue
        name = variable_name(cls, field)
        for value in (f"{sentinel} with spaces", f"amqp://u:{sentinel}@:99999/ x", "\x01"):
            try:
                build(cls, {name: value, "APP_ENV": "production"}).validate_for_production()
            except ConfigurationError as exc:
                assert sentinel not in str(exc), name
            else:
                raise AssertionError("production without secrets was accepted")


def test_rotate_keys_names_a_bad_key_in_one_line(monkeypatch, capsys):
    from services.cli import main

    monkeypatch.setenv("CHAT_ID_ENCRYPTION_KEY", "not-a-fernet-key")
    assert main(["rotate-keys"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "CHAT_ID_ENCRYPTION_KEY" in err
    assert "not-a-fernet-key" not in err
