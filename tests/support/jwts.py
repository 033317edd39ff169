"""The platform's JWTs as tests and benchmarks make them: one builder for user and admin tokens.

A user token's `sub` is the user; an admin token carries `admin` in `roles` and the admin audience
(ADMIN_JWT_AUDIENCE). Audience and issuer are left out unless given, as the development settings
check neither.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt

from services.common.auth import JwtSettings

SECRET = "tests-jwt-secret-0123456789abcdef-0123456789"
"""An HS256 secret long enough for production's check, for tests that verify their own tokens."""


def make_jwt(
    sub: str | None,
    secret: str,
    *,
    roles: Iterable[str] | None = None,
    audience: str | list[str] | None = None,
    issuer: str | None = None,
    expires_in: float | None = 300,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """A token for `sub` signed with `secret`; `claims` are added last (they may replace `sub` or
    `exp`). `sub=None` or `expires_in=None` leave that claim out."""
    payload: dict[str, Any] = {}
    if sub is not None:
        payload["sub"] = sub
    if roles is not None:
        payload["roles"] = list(roles)
    if audience is not None:
        payload["aud"] = audience
    if issuer is not None:
        payload["iss"] = issuer
    if expires_in is not None:
        payload["exp"] = int(time.time() + expires_in)
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=algorithm)


def bearer(sub: str | None, secret: str, **options: Any) -> dict[str, str]:
    """The Authorization header of `make_jwt(sub, secret, **options)`."""
    return {"Authorization": f"Bearer {make_jwt(sub, secret, **options)}"}


def jwt_settings(**values: Any) -> JwtSettings:
    """Development settings verifying HS256 tokens signed with `SECRET`, their user in `sub`, with
    no audience or issuer checked; `values` replace any of them."""
    base: dict[str, Any] = {
        "app_env": "development",
        "jwt_secret": SECRET,
        "jwt_public_key": None,
        "jwt_algorithms": ["HS256"],
        "jwt_audience": None,
        "jwt_issuer": None,
        "jwt_user_claim": "sub",
    }
    return JwtSettings(_env_file=None, **(base | values))
