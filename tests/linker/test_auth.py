"""JWT verification (services/common/auth.py): what is accepted, every attack refused."""

import base64
import hashlib
import hmac
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI

from services.common.auth import (
    AuthError,
    Claims,
    CurrentUser,
    JwtSettings,
    current_admin,
    install_auth,
    make_verifier,
    require_role,
)
from services.common.web import install_common
from shared.settings import ConfigurationError

pytestmark = pytest.mark.unit

SECRET = "unit-tests-jwt-secret-0123456789abcdef"
OTHER_SECRET = "another-secret-of-enough-length-0123456789"


def settings(**values) -> JwtSettings:
    base = {
        "jwt_secret": SECRET,
        "jwt_public_key": None,
        "jwt_algorithms": ["HS256"],
        "jwt_audience": None,
        "jwt_issuer": None,
        "jwt_user_claim": "sub",
        "app_env": "development",
    }
    return JwtSettings(**(base | values))


def token(payload=None, key=SECRET, algorithm="HS256", **claims) -> str:
    body = {"sub": "123", "exp": int(time.time()) + 300} if payload is None else dict(payload)
    body.update(claims)
    return jwt.encode(body, key, algorithm=algorithm)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(payload: dict, alg: str = "none") -> str:
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(payload)}."


def pem_keys(private_key) -> tuple[bytes, str]:
    private = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


RSA_PRIVATE, RSA_PUBLIC = pem_keys(rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC_PRIVATE, EC_PUBLIC = pem_keys(ec.generate_private_key(ec.SECP256R1()))


def test_a_valid_hs256_token_gives_the_user_and_roles():
    claims = make_verifier(settings())(token(roles=["admin", "user"]))
    assert claims.user_id == "123"
    assert claims.roles == frozenset({"admin", "user"})
    assert claims.claims["sub"] == "123"


def test_numeric_subject_is_carried_as_text_and_roles_may_be_a_string():
    claims = make_verifier(settings())(token(sub=123, roles="admin ops"))
    assert claims == Claims("123", frozenset({"admin", "ops"}), claims.claims)


def test_user_claim_name_is_configurable():
    verify = make_verifier(settings(jwt_user_claim="user_id"))
    assert verify(token({"user_id": "u9", "exp": int(time.time()) + 60})).user_id == "u9"
    with pytest.raises(AuthError, match="'user_id'"):
        verify(token())


@pytest.mark.parametrize(
    ("algorithm", "private", "public"),
    [("RS256", RSA_PRIVATE, RSA_PUBLIC), ("ES256", EC_PRIVATE, EC_PUBLIC)],
)
def test_asymmetric_tokens_verify_with_the_public_key(algorithm, private, public):
    verify = make_verifier(
        settings(jwt_secret=None, jwt_public_key=public, jwt_algorithms=[algorithm])
    )
    assert verify(token(key=private, algorithm=algorithm)).user_id == "123"


def test_a_public_key_with_escaped_newlines_is_accepted():
    escaped = RSA_PUBLIC.replace("\n", "\\n")
    verify = make_verifier(
        settings(jwt_secret=None, jwt_public_key=escaped, jwt_algorithms=["RS256"])
    )
    assert verify(token(key=RSA_PRIVATE, algorithm="RS256")).user_id == "123"


def now() -> int:
    """The current time, read when a token is made (not at import: the suite runs for minutes)."""
    return int(time.time())


ATTACKS = [
    ("alg none", lambda: unsigned({"sub": "123", "exp": now() + 300}), "algorithm"),
    ("alg None", lambda: unsigned({"sub": "123", "exp": now() + 300}, "None"), "algorithm"),
    ("wrong key", lambda: token(key=OTHER_SECRET), "signature"),
    ("alg outside the list", lambda: token(key=SECRET * 2, algorithm="HS512"), "algorithm"),
    ("expired", lambda: token(exp=now() - 3600), "expired"),
    ("missing exp", lambda: token({"sub": "123"}), "'exp'"),
    ("missing sub", lambda: token({"exp": now() + 300}), "'sub'"),
    ("blank sub", lambda: token(sub="  "), "not a user id"),
    ("sub not a string", lambda: token(sub=["123"]), "not a user id"),
    ("sub too long", lambda: token(sub="u" * 129), "not a user id"),
    ("not yet valid", lambda: token(nbf=now() + 3600), "not valid yet"),
    ("tampered payload", lambda: _tampered(), "signature"),
    ("garbage", lambda: "not-a-jwt", "malformed"),
    ("empty", lambda: "", "malformed"),
    ("three dots", lambda: "a.b.c", "malformed"),
]


def _tampered() -> str:
    header, _, signature = token().split(".")
    return f"{header}.{b64({'sub': 'admin', 'exp': now() + 300})}.{signature}"


@pytest.mark.parametrize(("name", "make", "reason"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attacks_are_refused(name, make, reason):
    with pytest.raises(AuthError, match=reason):
        make_verifier(settings())(make())


def test_hs256_signed_with_the_public_key_is_refused_when_only_rs256_is_accepted():
    # The classic algorithm-confusion attack: the public key used as an HMAC secret.
    verify = make_verifier(
        settings(jwt_secret=None, jwt_public_key=RSA_PUBLIC, jwt_algorithms=["RS256"])
    )
    forged = _hmac_with(RSA_PUBLIC.encode())
    with pytest.raises(AuthError, match="algorithm"):
        verify(forged)


def _hmac_with(key: bytes) -> str:
    signing_input = (
        f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': '123', 'exp': now() + 300})}"
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    ("configured", "claims", "reason"),
    [
        ({"jwt_audience": "sns"}, {"aud": "other"}, "audience"),
        ({"jwt_audience": "sns"}, {}, "'aud'"),
        ({"jwt_issuer": "platform"}, {"iss": "evil"}, "issuer"),
        ({"jwt_issuer": "platform"}, {}, "'iss'"),
    ],
)
def test_audience_and_issuer_are_checked_when_configured(configured, claims, reason):
    with pytest.raises(AuthError, match=reason):
        make_verifier(settings(**configured))(token(**claims))


def test_matching_audience_and_issuer_are_accepted_and_unconfigured_ones_ignored():
    verify = make_verifier(settings(jwt_audience="sns", jwt_issuer="platform"))
    assert verify(token(aud="sns", iss="platform")).user_id == "123"
    assert make_verifier(settings())(token(aud="anything", iss="anyone")).user_id == "123"


def test_small_clock_skew_is_tolerated():
    assert make_verifier(settings())(token(iat=now() + 5, exp=now() - 5)).user_id == "123"


def test_error_messages_never_repeat_the_token():
    bad = token(key=OTHER_SECRET)
    with pytest.raises(AuthError) as caught:
        make_verifier(settings())(bad)
    assert bad not in str(caught.value)
    assert bad.split(".")[1] not in str(caught.value)


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"jwt_secret": None}, ["JWT_SECRET"]),
        ({"jwt_algorithms": ["RS256"], "jwt_secret": None}, ["JWT_PUBLIC_KEY"]),
        ({"jwt_algorithms": ["none"]}, ["JWT_ALGORITHMS"]),
        ({"jwt_algorithms": []}, ["JWT_ALGORITHMS"]),
        ({"jwt_algorithms": ["HS256", "ES256"]}, ["JWT_PUBLIC_KEY"]),
    ],
)
def test_unusable_configuration_is_a_startup_error_naming_the_variable(values, names):
    with pytest.raises(ConfigurationError) as caught:
        make_verifier(settings(**values))
    for name in names:
        assert name in str(caught.value)


def test_an_invalid_public_key_is_a_startup_error():
    with pytest.raises(ConfigurationError, match="JWT_PUBLIC_KEY is not a valid key"):
        make_verifier(
            settings(jwt_secret=None, jwt_public_key="nonsense", jwt_algorithms=["RS256"])
        )


def test_production_requires_a_long_secret():
    short = settings(app_env="production", jwt_secret="short")
    assert any("at least 32 bytes" in p for p in short.jwt_problems())
    assert not settings(jwt_secret="short").jwt_problems()  # development tolerates it


def test_algorithms_come_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("JWT_ALGORITHMS", "RS256, ES256")
    assert JwtSettings().jwt_algorithms == ["RS256", "ES256"]


def app_with_auth() -> FastAPI:
    app = FastAPI()
    install_common(app, "auth-test")
    install_auth(app, make_verifier(settings()), admin=make_verifier(settings(), admin=True))

    @app.get("/me")
    async def me(user: CurrentUser) -> dict:
        return {"user": user.user_id}

    @app.get("/ops", dependencies=[Depends(require_role("ops"))])
    async def ops() -> dict:
        return {"ok": True}

    @app.get("/admin", dependencies=[Depends(current_admin)])
    async def admin() -> dict:
        return {"ok": True}

    return app


@pytest.fixture
async def client():
    transport = httpx.ASGITransport(app=app_with_auth())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic dXNlcjpwdw==", f"Bearer {token(key=OTHER_SECRET)}", "Bearer x.y.z"],
)
async def test_dependency_answers_401_in_the_common_shape(client, header):
    headers = {"Authorization": header} if header else {}
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error" and body["code"] == "unauthorized"
    assert isinstance(body["message"], str)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_dependency_gives_the_user(client):
    response = await client.get("/me", headers={"Authorization": f"Bearer {token()}"})
    assert response.json() == {"user": "123"}


@pytest.mark.parametrize(("path", "role"), [("/ops", "ops"), ("/admin", "admin")])
async def test_require_role_and_current_admin(client, path, role):
    plain = {"Authorization": f"Bearer {token()}"}
    holder = {"Authorization": f"Bearer {token(roles=[role])}"}
    response = await client.get(path, headers=plain)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert (await client.get(path, headers=holder)).json() == {"ok": True}
    assert (await client.get(path)).status_code == 401
