"""Admin endpoints have their own audience (services/common/auth.py): a token the platform issued
for the frontend is not an admin token, whatever roles it carries."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from services.common.auth import (
    AdminUser,
    AuthError,
    CurrentUser,
    JwtSettings,
    current_admin,
    install_auth,
    make_verifier,
    require_role,
)
from services.common.web import install_common
from tests.support.jwts import make_jwt

pytestmark = pytest.mark.unit

SECRET = "admin-audience-tests-secret-0123456789abcdef"
FRONTEND, ADMIN, ISSUER = "sns-frontend", "sns-admin", "https://auth.sns.internal"


def settings(**values) -> JwtSettings:
    base = {
        "app_env": "development",
        "jwt_secret": SECRET,
        "jwt_public_key": None,
        "jwt_algorithms": ["HS256"],
        "jwt_audience": FRONTEND,
        "jwt_issuer": ISSUER,
        "admin_jwt_audience": ADMIN,
    }
    return JwtSettings(_env_file=None, **(base | values))


def token(aud: str | list[str] | None, roles: list[str], **claims) -> str:
    return make_jwt("u1", SECRET, roles=roles, audience=aud, issuer=ISSUER, **claims)


def app(configured: JwtSettings) -> FastAPI:
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
    response = await call(app(settings()), method, path, token(FRONTEND, ["admin"]))
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error" and body["code"] == "unauthorized"
    assert "admin audience" in body["message"]


async def test_an_admin_token_opens_admin_endpoints_and_not_user_ones():
    application = app(settings())
    admin = token(ADMIN, ["admin"])
    assert (await call(application, "GET", "/admin/status", admin)).json() == {"ok": True}
    assert (await call(application, "POST", "/admin/who", admin)).json() == {"admin": "u1"}
    assert (await call(application, "GET", "/me", admin)).status_code == 401
    frontend = token(FRONTEND, [])
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
    response = await call(app(settings()), "GET", "/admin/status", token(aud, roles))
    assert response.status_code == status
    assert response.json()["code"] == ("forbidden" if status == 403 else "unauthorized")


def test_the_admin_verifier_checks_the_issuer_too():
    verify = make_verifier(settings(), admin=True)
    with pytest.raises(AuthError, match="issuer"):
        verify(token(ADMIN, ["admin"], iss="https://evil.example"))


async def test_an_app_without_an_admin_verifier_refuses_admin_tokens():
    application = FastAPI()
    install_common(application, "no-admin")
    install_auth(application, make_verifier(settings()))

    @application.get("/admin/status", dependencies=[Depends(current_admin)])
    async def status() -> dict:
        return {"ok": True}

    response = await call(application, "GET", "/admin/status", token(ADMIN, ["admin"]))
    assert response.status_code == 401
    assert response.json()["message"] == "this service accepts no admin tokens"


def test_require_role_cannot_guard_an_admin_endpoint():
    # An admin endpoint guarded by the user audience would accept frontend tokens again.
    with pytest.raises(ValueError, match="current_admin"):
        require_role("admin")


ADMIN_APP = app(settings())
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
