"""`sns-telegram dev-token`: a JWT the development setup accepts, to try the APIs by hand.

    APP_ENV=development sns-telegram dev-token --user 123            # for /api/telegram/...
    APP_ENV=development sns-telegram dev-token --user ops --admin    # for /api/admin/...

Signed with JWT_SECRET, or the development secret `sns-telegram dev` uses when it is unset; with
JWT_AUDIENCE (a user token) or ADMIN_JWT_AUDIENCE and the `admin` role (an admin token), and
JWT_ISSUER, whenever they are set, since the services then require them. Refused unless APP_ENV
says development: production is the default, and never gets a token from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

DEVELOPMENT = {"JWT_SECRET": "dev-only-jwt-secret-change-me-0123456789"}
"""What `sns-telegram dev` gives the services when the variable is unset (production refuses it:
tests/deploy/test_placeholders.py)."""
DEV_JWT_SECRET = DEVELOPMENT["JWT_SECRET"]


class Refused(Exception):
    """No token: the message says why (never the secret)."""


def mint(
    env: Mapping[str, str],
    user: str,
    *,
    admin: bool = False,
    minutes: int = 60,
    now: datetime | None = None,
) -> str:
    """A signed JWT for `user` that the services configured by `env` accept."""
    import jwt

    from services.common.auth import SYMMETRIC_ALGORITHMS, JwtSettings
    from shared.settings import ConfigurationError

    try:
        settings = JwtSettings(**_settings_from(env))
    except ConfigurationError as exc:
        raise Refused(f"configuration error: {exc}") from None
    if settings.is_production:
        raise Refused(
            "tokens are minted for development only, and APP_ENV is production (the default): "
            "run it as `APP_ENV=development sns-telegram dev-token ...`"
        )
    algorithm = next((a for a in settings.jwt_algorithms if a in SYMMETRIC_ALGORITHMS), None)
    if algorithm is None:
        raise Refused(
            f"JWT_ALGORITHMS ({', '.join(settings.jwt_algorithms)}) accepts no HS* algorithm: "
            "dev-token signs with JWT_SECRET; ask your token issuer instead"
        )
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else DEV_JWT_SECRET
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        settings.jwt_user_claim: user,
        "iat": issued,
        "exp": issued + timedelta(minutes=minutes),
    }
    audience = settings.admin_jwt_audience if admin else settings.jwt_audience
    if audience:
        claims["aud"] = audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if admin:
        claims["roles"] = ["admin"]
    return jwt.encode(claims, secret, algorithm=algorithm)


def _settings_from(env: Mapping[str, str]) -> dict[str, Any]:
    """The JWT_* and APP_ENV variables of `env`, as settings arguments (env may not be ours)."""
    names = (
        "jwt_secret",
        "jwt_algorithms",
        "jwt_audience",
        "jwt_issuer",
        "admin_jwt_audience",
        "jwt_user_claim",
    )
    given = {name: env[name.upper()] for name in names if env.get(name.upper())}
    # Said explicitly: the settings would otherwise also read this process's environment.
    return {**given, "app_env": env.get("APP_ENV") or "production"}
