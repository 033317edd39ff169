"""`sns-telegram dev-token` prints JWTs the development setup accepts, and refuses production."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.common.auth import AuthError, JwtSettings, make_verifier
from services.dev.runner import dev_environment

pytestmark = pytest.mark.unit

SECRET = "a-development-secret-0123456789-abcdef"


def dev_token(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "dev-token", *args],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings(env: dict[str, str]) -> JwtSettings:
    """The JWT settings a service started with `env` reads."""
    fields = ("jwt_secret", "jwt_audience", "jwt_issuer", "admin_jwt_audience")
    given = {f: env[f.upper()] for f in fields if f.upper() in env}
    return JwtSettings(app_env=env["APP_ENV"], **given)


def test_a_user_token_for_what_sns_telegram_dev_runs() -> None:
    made = dev_token("--user", "123", APP_ENV="development")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout == token + "\n"  # the token alone: TOKEN=$(sns-telegram dev-token ...)
    accepted = make_verifier(settings(dev_environment({})))(token)
    assert accepted.user_id == "123"
    assert accepted.roles == frozenset()


def test_admin_and_user_tokens_for_configured_audiences_and_issuer() -> None:
    env = {
        "APP_ENV": "development",
        "JWT_SECRET": SECRET,
        "JWT_AUDIENCE": "sns-frontend",
        "ADMIN_JWT_AUDIENCE": "sns-admin",
        "JWT_ISSUER": "sns-platform",
    }
    admin = dev_token("--user", "ops", "--admin", **env).stdout.strip()
    user = dev_token("--user", "123", **env).stdout.strip()
    admin_verifier = make_verifier(settings(env), admin=True)
    user_verifier = make_verifier(settings(env))
    claims = admin_verifier(admin)
    assert (claims.user_id, "admin" in claims.roles) == ("ops", True)
    assert user_verifier(user).user_id == "123"
    with pytest.raises(AuthError):
        admin_verifier(user)  # a user token never opens an admin endpoint


@pytest.mark.parametrize("app_env", [None, "production"])
def test_refused_unless_development(app_env: str | None) -> None:
    env = {"JWT_SECRET": SECRET} | ({"APP_ENV": app_env} if app_env else {})
    refused = dev_token("--user", "123", **env)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "APP_ENV=development" in refused.stderr
    assert SECRET not in refused.stderr
