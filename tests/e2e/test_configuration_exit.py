"""`sns-telegram <service>` as a real process with a bad or incomplete environment: one line on
stderr naming the variables, a non-zero exit, never a traceback. With APP_ENV unset the services
are in production and refuse to start without their secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import variable_name
from tests.configs import SERVICE_SETTINGS

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OURS = {
    variable_name(cls, field) for cls in SERVICE_SETTINGS.values() for field in cls.model_fields
}


def run(service: str, **env: str) -> tuple[int, str]:
    """Exit status and stderr of `sns-telegram SERVICE` with only `env` of our variables."""
    clean = {k: v for k, v in os.environ.items() if k.upper() not in OURS}
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", service],
        env=clean | env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stderr


def assert_one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


TELEGRAM = ["TELEGRAM_BOT_TOKEN", "CHAT_ID_ENCRYPTION_KEY"]
SERVERS = ["RABBITMQ_URL", "DATABASE_URL"]
JWT = ["JWT_SECRET", "JWT_AUDIENCE", "JWT_ISSUER", "ADMIN_JWT_AUDIENCE"]
REQUIRED = {
    "notifier": TELEGRAM + SERVERS,
    "linker": TELEGRAM + SERVERS + JWT,
    "scheduler": SERVERS + JWT,
}


@pytest.mark.parametrize("service", sorted(REQUIRED))
def test_without_app_env_a_service_is_in_production_and_refuses_to_start(service):
    status, stderr = run(service)
    assert status != 0
    line = assert_one_line(stderr)
    assert line.startswith(f"{service}: configuration error: APP_ENV=production")
    for variable in REQUIRED[service]:
        assert variable in line
    if service == "scheduler":  # it never talks to Telegram
        assert "TELEGRAM_BOT_TOKEN" not in line and "CHAT_ID_ENCRYPTION_KEY" not in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SCHEDULER_PORT", "eighty"),
        ("SCHEDULER_TICK_SECONDS", "nan"),
        ("SCHEDULER_HOST", "not a host"),
        ("LOG_LEVEL", "loud"),
        ("DATABASE_URL", "mysql://u:p@db/x"),
        ("APP_ENV", "prod"),
        ("JWT_ALGORITHMS", "none"),  # refused when the verifier is built, still before serving
    ],
)
def test_a_bad_variable_is_one_line_naming_it(variable, value):
    status, stderr = run("scheduler", **{"APP_ENV": "development", variable: value})
    assert status != 0
    line = assert_one_line(stderr)
    assert line.startswith("scheduler: configuration error:")
    assert variable in line


def test_the_placeholder_jwt_secret_compose_ships_is_refused_in_production():
    example = (ROOT / "deploy" / ".env.example").read_text()
    shipped = next(
        line.split("=", 1)[1] for line in example.splitlines() if line.startswith("JWT_SECRET=")
    )
    status, stderr = run(
        "scheduler",
        APP_ENV="production",
        JWT_SECRET=shipped,
        JWT_AUDIENCE="sns-frontend",
        JWT_ISSUER="https://auth.sns.internal",
        ADMIN_JWT_AUDIENCE="sns-admin",
        RABBITMQ_URL="amqps://sns:Vq3xT8mRw2Lp@mq.internal:5671/sns",
        DATABASE_URL="postgresql://sns:Vq3xT8mRw2Lp@db.internal:5432/sns_telegram",
    )
    assert status != 0
    line = assert_one_line(stderr)
    assert "JWT_SECRET is a placeholder" in line
    assert shipped not in line
