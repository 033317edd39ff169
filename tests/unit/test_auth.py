"""JWT verification (services/common/auth.py): what is accepted, every attack refused; and admin
endpoints, which have their own audience: a token the platform issued for the frontend is not an
admin token, whatever roles it carries."""

import asyncio
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
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from services.common.auth import (
    AdminUser,
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
from tests.support.jwts import SECRET, jwt_settings, make_jwt

pytestmark = pytest.mark.unit

OTHER_SECRET = "another-secret-of-enough-length-0123456789"


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
    claims = make_verifier(jwt_settings())(token(roles=["admin", "user"]))
    assert claims.user_id == "123"
    assert claims.roles == frozenset({"admin", "user"})
    assert claims.claims["sub"] == "123"


def test_numeric_subject_is_carried_as_text_and_roles_may_be_a_string():
    claims = make_verifier(jwt_settings())(token(sub=123, roles="admin ops"))
    assert claims == Claims("123", frozenset({"admin", "ops"}), claims.claims)


def test_user_claim_name_is_configurable():
    verify = make_verifier(jwt_settings(jwt_user_claim="user_id"))
    assert verify(token({"user_id": "u9", "exp": int(time.time()) + 60})).user_id == "u9"
    with pytest.raises(AuthError, match="'user_id'"):
        verify(token())


@pytest.mark.parametrize(
    ("algorithm", "private", "public"),
    [("RS256", RSA_PRIVATE, RSA_PUBLIC), ("ES256", EC_PRIVATE, EC_PUBLIC)],
)
def test_asymmetric_tokens_verify_with_the_public_key(algorithm, private, public):
    verify = make_verifier(
        jwt_settings(jwt_secret=None, jwt_public_key=public, jwt_algorithms=[algorithm])
    )
    assert verify(token(key=private, algorithm=algorithm)).user_id == "123"


def test_a_public_key_with_escaped_newlines_is_accepted():
    escaped = RSA_PUBLIC.replace("\n", "\\n")
    verify = make_verifier(
        jwt_settings(jwt_secret=None, jwt_public_key=escaped, jwt_algorithms=["RS256"])
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
        make_verifier(jwt_settings())(make())


def test_hs256_signed_with_the_public_key_is_refused_when_only_rs256_is_accepted():
    # The classic algorithm-confusion attack: the public key used as an HMAC secret.
    verify = make_verifier(
        jwt_settings(jwt_secret=None, jwt_public_key=RSA_PUBLIC, jwt_algorithms=["RS256"])
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
        make_verifier(jwt_settings(**configured))(token(**claims))


def test_matching_audience_and_issuer_are_accepted_and_unconfigured_ones_ignored():
    verify = make_verifier(jwt_settings(jwt_audience="sns", jwt_issuer="platform"))
    assert verify(token(aud="sns", iss="platform")).user_id == "123"
    assert make_verifier(jwt_settings())(token(aud="anything", iss="anyone")).user_id == "123"


def test_small_clock_skew_is_tolerated():
    assert make_verifier(jwt_settings())(token(iat=now() + 5, exp=now() - 5)).user_id == "123"


def test_error_messages_never_repeat_the_token():
    bad = token(key=OTHER_SECRET)
    with pytest.raises(AuthError) as caught:
        make_verifier(jwt_settings())(bad)
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
        make_verifier(jwt_settings(**values))
    for name in names:
        assert name in str(caught.value)


def test_an_invalid_public_key_is_a_startup_error():
    with pytest.raises(ConfigurationError, match="JWT_PUBLIC_KEY is not a valid key"):
        make_verifier(
            jwt_settings(jwt_secret=None, jwt_public_key="nonsense", jwt_algorithms=["RS256"])
        )


def test_production_requires_a_long_secret():
    short = jwt_settings(app_env="production", jwt_secret="short")
    assert any("at least 32 bytes" in p for p in short.jwt_problems())
    assert not jwt_settings(jwt_secret="short").jwt_problems()  # development tolerates it


def test_algorithms_come_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("JWT_ALGORITHMS", "RS256, ES256")
    assert JwtSettings().jwt_algorithms == ["RS256", "ES256"]


def app_with_auth() -> FastAPI:
    app = FastAPI()
    install_common(app, "auth-test")
    install_auth(
        app, make_verifier(jwt_settings()), admin=make_verifier(jwt_settings(), admin=True)
    )

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


# -- admin endpoints: their own audience ---------------------------------------------------------
FRONTEND, ADMIN, ISSUER = "sns-frontend", "sns-admin", "https://auth.sns.internal"


def admin_settings(**values) -> JwtSettings:
    """Tokens for the frontend (`FRONTEND`) and for admin endpoints (`ADMIN`), from `ISSUER`."""
    return jwt_settings(
        **{"jwt_audience": FRONTEND, "jwt_issuer": ISSUER, "admin_jwt_audience": ADMIN} | values
    )


def admin_token(aud: str | list[str] | None, roles: list[str], **claims) -> str:
    return make_jwt("u1", SECRET, roles=roles, audience=aud, issuer=ISSUER, **claims)


def admin_app(configured: JwtSettings) -> FastAPI:
    application = FastAPI()
    install_common(application, "admin-audience-test")
    install_auth(
        application, make_verifier(configured), admin=make_verifier(configured, admin=True)
    )

    @application.get("/me")
    async def me(user: CurrentUser) -> dict:
        return {"user": user.user_id}

    @application.get("/admin/status", dependencies=[Depends(current_admin)])
    async def status() -> dict:
        return {"ok": True}

    @application.post("/admin/who")
    async def who(admin: AdminUser) -> dict:
        return {"admin": admin.user_id}

    return application


async def call(application: FastAPI, method: str, path: str, bearer: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, headers={"Authorization": f"Bearer {bearer}"})


@pytest.mark.parametrize(("method", "path"), [("GET", "/admin/status"), ("POST", "/admin/who")])
async def test_a_frontend_token_with_the_admin_role_is_not_an_admin_token(method, path):
    response = await call(
        admin_app(admin_settings()), method, path, admin_token(FRONTEND, ["admin"])
    )
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error" and body["code"] == "unauthorized"
    assert "admin audience" in body["message"]


async def test_an_admin_token_opens_admin_endpoints_and_not_user_ones():
    application = admin_app(admin_settings())
    admin = admin_token(ADMIN, ["admin"])
    assert (await call(application, "GET", "/admin/status", admin)).json() == {"ok": True}
    assert (await call(application, "POST", "/admin/who", admin)).json() == {"admin": "u1"}
    assert (await call(application, "GET", "/me", admin)).status_code == 401
    frontend = admin_token(FRONTEND, [])
    assert (await call(application, "GET", "/me", frontend)).json() == {"user": "u1"}


@pytest.mark.parametrize(
    ("aud", "roles", "status"),
    [
        (ADMIN, [], 403),  # the right audience, not an admin
        (ADMIN, ["user"], 403),
        (None, ["admin"], 401),  # no audience at all
        ("someone-else", ["admin"], 401),
        ([FRONTEND, "other"], ["admin"], 401),
    ],
)
async def test_admin_endpoints_need_the_audience_and_the_role(aud, roles, status):
    response = await call(
        admin_app(admin_settings()), "GET", "/admin/status", admin_token(aud, roles)
    )
    assert response.status_code == status
    assert response.json()["code"] == ("forbidden" if status == 403 else "unauthorized")


def test_the_admin_verifier_checks_the_issuer_too():
    verify = make_verifier(admin_settings(), admin=True)
    with pytest.raises(AuthError, match="issuer"):
        verify(admin_token(ADMIN, ["admin"], iss="https://evil.example"))


async def test_an_app_without_an_admin_verifier_refuses_admin_tokens():
    application = FastAPI()
    install_common(application, "no-admin")
    install_auth(application, make_verifier(admin_settings()))

    @application.get("/admin/status", dependencies=[Depends(current_admin)])
    async def status() -> dict:
        return {"ok": True}

    response = await call(application, "GET", "/admin/status", admin_token(ADMIN, ["admin"]))
    assert response.status_code == 401
    assert response.json()["message"] == "this service accepts no admin tokens"


def test_require_role_cannot_guard_an_admin_endpoint():
    # An admin endpoint guarded by the user audience would accept frontend tokens again.
    with pytest.raises(ValueError, match="current_admin"):
        require_role("admin")


ADMIN_APP = admin_app(admin_settings())
CLAIM_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    aud=st.none()
    | CLAIM_TEXT
    | st.sampled_from([FRONTEND, ADMIN])
    | st.lists(st.sampled_from([FRONTEND, ADMIN, "x"]) | st.integers(), max_size=3)
    | st.integers(),
    roles=st.none()
    | CLAIM_TEXT
    | st.sampled_from(["admin", "admin ops", "user"])
    | st.lists(st.sampled_from(["admin", "user"]) | CLAIM_TEXT | st.integers(), max_size=3)
    | st.integers(),
    iss=st.none() | st.just(ISSUER) | CLAIM_TEXT,
)
@example(aud=FRONTEND, roles=["admin"], iss=ISSUER)
@example(aud=[FRONTEND, ADMIN], roles="admin", iss=ISSUER)
@example(aud=[ADMIN, 7], roles=["admin"], iss=ISSUER)
def test_any_claims_open_the_admin_api_only_with_the_admin_audience_and_role(aud, roles, iss):
    body = {"sub": "u1", "exp": int(time.time()) + 300}
    body |= {k: v for k, v in {"aud": aud, "roles": roles, "iss": iss}.items() if v is not None}
    response = asyncio.run(
        call(ADMIN_APP, "GET", "/admin/status", jwt.encode(body, SECRET, algorithm="HS256"))
    )
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
    verified = (
        iss == ISSUER
        and auds is not None
        and all(isinstance(a, str) for a in auds)
        and ADMIN in auds
    )
    listed = roles.split() if isinstance(roles, str) else roles if isinstance(roles, list) else []
    expected = (200 if "admin" in listed else 403) if verified else 401
    assert response.status_code == expected, response.text
    if expected != 200:
        assert response.json()["code"] == ("forbidden" if expected == 403 else "unauthorized")


@hypothesis_settings(max_examples=200, deadline=None)
@given(header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300))
def test_any_authorization_header_is_a_401_never_a_5xx(header):
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=ADMIN_APP)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/admin/status", headers={"Authorization": header})

    response = asyncio.run(send())
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
