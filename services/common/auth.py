"""Verifying the platform's JWTs, and the FastAPI dependencies that use them.

    class MySettings(JwtSettings): ...                 # JWT_* variables (deploy/.env.example)
    install_auth(app, make_verifier(settings), admin=make_verifier(settings, admin=True))

    @router.get("/me")
    async def me(user: CurrentUser) -> ...: user.user_id
    @router.post("/admin/x", dependencies=[Depends(current_admin)])   # or `admin: AdminUser`

A token is accepted only with an algorithm from JWT_ALGORITHMS, the matching key (JWT_SECRET for
HS*, JWT_PUBLIC_KEY otherwise), an `exp`, the user claim (JWT_USER_CLAIM, default `sub`) and,
when configured, the expected `iss` (JWT_ISSUER) and `aud`. Two audiences: user endpoints accept
tokens for JWT_AUDIENCE (the frontend's), admin endpoints only tokens for ADMIN_JWT_AUDIENCE with
`admin` in `roles`, so a frontend token is never an admin token, whatever its roles. Production
requires all three variables (the two audiences different). Tokens are never logged or echoed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from shared.settings import BaseServiceSettings, ConfigurationError

SYMMETRIC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MIN_SECRET_BYTES = 32
"""HS256 needs a key at least as long as its output (RFC 7518 section 3.2)."""
MAX_USER_ID_LENGTH = 128
ADMIN_ROLE = "admin"
"""The role admin endpoints require, on a token for ADMIN_JWT_AUDIENCE (`current_admin`)."""


class JwtSettings(BaseServiceSettings):
    """The JWT_* variables; services with an authenticated API subclass this."""

    jwt_secret: SecretStr | None = None
    jwt_public_key: SecretStr | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["HS256"])
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    admin_jwt_audience: str | None = None
    """The `aud` of admin tokens; required in production and different from JWT_AUDIENCE."""
    jwt_user_claim: str = Field(default="sub", min_length=1, max_length=64)
    jwt_leeway_seconds: float = Field(default=30.0, ge=0, le=300)

    @field_validator("jwt_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    def jwt_problems(self) -> list[str]:
        """What makes the JWT configuration unusable, each naming its variable."""
        problems = []
        unknown = set(self.jwt_algorithms) - SYMMETRIC_ALGORITHMS - ASYMMETRIC_ALGORITHMS
        if unknown or not self.jwt_algorithms:
            problems.append(
                f"JWT_ALGORITHMS must list algorithms from "
                f"{sorted(SYMMETRIC_ALGORITHMS | ASYMMETRIC_ALGORITHMS)}, not {sorted(unknown)}"
            )
        symmetric = SYMMETRIC_ALGORITHMS.intersection(self.jwt_algorithms)
        asymmetric = ASYMMETRIC_ALGORITHMS.intersection(self.jwt_algorithms)
        if symmetric and self.jwt_secret is None:
            problems.append(f"JWT_SECRET is required for {', '.join(sorted(symmetric))}")
        if asymmetric and self.jwt_public_key is None:
            problems.append(f"JWT_PUBLIC_KEY is required for {', '.join(sorted(asymmetric))}")
        if not self.is_production:
            return problems
        if (
            symmetric
            and self.jwt_secret is not None
            and len(self.jwt_secret.get_secret_value().encode()) < MIN_SECRET_BYTES
        ):
            problems.append(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if not self.jwt_audience:
            problems.append("JWT_AUDIENCE is required (the `aud` of the frontend's tokens)")
        if not self.jwt_issuer:
            problems.append("JWT_ISSUER is required (the `iss` of the platform's tokens)")
        if not self.admin_jwt_audience:
            problems.append("ADMIN_JWT_AUDIENCE is required (the `aud` of admin tokens)")
        elif self.admin_jwt_audience == self.jwt_audience:
            problems.append(
                "ADMIN_JWT_AUDIENCE must differ from JWT_AUDIENCE (a frontend token must not be "
                "an admin token)"
            )
        return problems

    def production_problems(self) -> list[str]:
        """The base checks plus the JWT configuration, each naming its variable."""
        return [*super().production_problems(), *self.jwt_problems()]


@dataclass(frozen=True)
class Claims:
    """A verified token: the user it names, its roles, and every claim."""

    user_id: str
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)


class AuthError(Exception):
    """A token was refused; the message says why without repeating the token."""


Verifier = Callable[[str], Claims]


def _keys(settings: JwtSettings) -> dict[str, Any]:
    """Algorithm -> prepared key, each checked now so a bad key fails at startup."""
    problems = settings.jwt_problems()
    if problems:
        raise ConfigurationError("; ".join(problems))
    algorithms = jwt.algorithms.get_default_algorithms()
    keys: dict[str, Any] = {}
    for name in settings.jwt_algorithms:
        if name in SYMMETRIC_ALGORITHMS:
            assert settings.jwt_secret is not None
            raw, variable = settings.jwt_secret.get_secret_value(), "JWT_SECRET"
        else:
            assert settings.jwt_public_key is not None
            # PEM keys often arrive through env files with their newlines escaped.
            raw = settings.jwt_public_key.get_secret_value().replace("\\n", "\n")
            variable = "JWT_PUBLIC_KEY"
        try:
            keys[name] = algorithms[name].prepare_key(raw)
        except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"{variable} is not a valid key for {name}: {exc}") from None
    return keys


def _roles(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


def make_verifier(settings: JwtSettings, *, admin: bool = False) -> Verifier:
    """A function that verifies a JWT and returns its claims, or raises `AuthError`.

    For user endpoints the token's `aud` must be JWT_AUDIENCE; with `admin=True` (admin
    endpoints) it must be ADMIN_JWT_AUDIENCE. An unset audience (development only) is not checked.
    """
    keys = _keys(settings)
    claim = settings.jwt_user_claim
    audience = settings.admin_jwt_audience if admin else settings.jwt_audience
    wrong_audience = (
        "token audience is not accepted: admin endpoints need a token issued for the admin "
        "audience (ADMIN_JWT_AUDIENCE)"
        if admin
        else "token audience is not accepted"
    )
    options: dict[str, Any] = {
        "require": ["exp", claim],
        "verify_aud": audience is not None,
        "verify_iss": settings.jwt_issuer is not None,
        "verify_sub": False,  # checked below: the platform's user ids may be numbers
    }

    def verify(token: str) -> Claims:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError:
            raise AuthError("token is malformed") from None
        if not isinstance(algorithm, str) or algorithm not in keys:
            raise AuthError("token algorithm is not accepted")
        try:
            payload = jwt.decode(
                token,
                keys[algorithm],
                algorithms=[algorithm],
                audience=audience,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_seconds,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token has expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token has no '{exc.claim}' claim") from None
        except jwt.InvalidAudienceError:
            raise AuthError(wrong_audience) from None
        except jwt.InvalidIssuerError:
            raise AuthError("token issuer is not accepted") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token is not valid yet") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is invalid") from None
        except jwt.InvalidTokenError:
            raise AuthError("token is invalid") from None
        user = payload.get(claim)
        if isinstance(user, int) and not isinstance(user, bool):
            user = str(user)
        if not isinstance(user, str) or not user.strip() or len(user) > MAX_USER_ID_LENGTH:
            raise AuthError(f"token's '{claim}' claim is not a user id")
        return Claims(user_id=user, roles=_roles(payload.get("roles")), claims=payload)

    return verify


_bearer = HTTPBearer(auto_error=False, description="The SNS platform's JWT")


def install_auth(
    app: FastAPI, verifier: Verifier | None = None, *, admin: Verifier | None = None
) -> None:
    """Make `current_user` verify tokens with `verifier`, and `current_admin` with `admin` (made
    with `make_verifier(settings, admin=True)`), in this app. A kind of token the app was given
    no verifier for is refused with 401."""
    if verifier is None and admin is None:
        raise ValueError("install_auth needs a user verifier, an admin verifier, or both")
    app.state.jwt_verifier = verifier
    app.state.jwt_admin_verifier = admin


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail={"code": "unauthorized", "message": message},
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _verified(
    request: Request, credentials: HTTPAuthorizationCredentials | None, *, admin: bool
) -> Claims:
    if credentials is None:
        raise _unauthorized("an 'Authorization: Bearer <JWT>' header is required")
    state = request.app.state
    verifier: Verifier | None = getattr(
        state, "jwt_admin_verifier" if admin else "jwt_verifier", None
    )
    if verifier is None:
        kind = "admin" if admin else "user"
        raise _unauthorized(f"this service accepts no {kind} tokens")
    try:
        return verifier(credentials.credentials)
    except AuthError as exc:
        raise _unauthorized(str(exc)) from None


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Claims:
    """FastAPI dependency: the verified claims of the request's bearer token, else 401."""
    return _verified(request, credentials, admin=False)


CurrentUser = Annotated[Claims, Depends(current_user)]
"""A route parameter of this type receives the verified caller."""


async def current_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Claims:
    """FastAPI dependency of every admin endpoint: a token for ADMIN_JWT_AUDIENCE (401
    otherwise, e.g. a frontend token) with `admin` in its `roles` (403 otherwise)."""
    claims = _verified(request, credentials, admin=True)
    if ADMIN_ROLE not in claims.roles:
        raise _forbidden(ADMIN_ROLE)
    return claims


AdminUser = Annotated[Claims, Depends(current_admin)]
"""A route parameter of this type receives the verified admin."""


def _forbidden(role: str) -> HTTPException:
    return HTTPException(
        status_code=403,
        detail={"code": "forbidden", "message": f"the '{role}' role is required"},
    )


def require_role(role: str) -> Callable[..., Any]:
    """FastAPI dependency factory: the caller's claims if `role` is in its `roles`, else 403.

    Not for the admin role: a user token (JWT_AUDIENCE) must never open an admin endpoint, so
    admin endpoints depend on `current_admin`, which checks the admin audience too."""
    if role == ADMIN_ROLE:
        raise ValueError("admin endpoints depend on current_admin (the admin audience and role)")

    async def dependency(claims: CurrentUser) -> Claims:
        if role not in claims.roles:
            raise _forbidden(role)
        return claims

    return dependency
