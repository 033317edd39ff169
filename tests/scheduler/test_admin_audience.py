"""The scheduler's admin API accepts only tokens issued for the admin audience: a frontend token
(JWT_AUDIENCE) with `admin` in its roles is refused with a reason, an admin token works."""

from __future__ import annotations

import httpx
import pytest

from services.scheduler.config import JOB_ID
from services.scheduler.main import build_app
from tests.scheduler.harness import JWT_SECRET, changed, utc
from tests.support import jwts

pytestmark = pytest.mark.integration

FRONTEND, ADMIN, ISSUER = "sns-frontend", "sns-admin", "https://auth.sns.internal"
ROUTES = [
    ("GET", "/api/admin/scheduler/status"),
    ("GET", "/api/admin/scheduler/history"),
    ("POST", f"/api/admin/scheduler/jobs/{JOB_ID}/trigger"),
]


def bearer(aud: str, roles: list[str]) -> dict[str, str]:
    return jwts.bearer("admin-1", JWT_SECRET, roles=roles, audience=aud, issuer=ISSUER)


@pytest.fixture
async def scheduler(env):
    settings = changed(
        env.settings, jwt_audience=FRONTEND, jwt_issuer=ISSUER, admin_jwt_audience=ADMIN
    )
    replica = await env.replica(utc("2026-02-26T10:00"), settings=settings)
    app = build_app(settings, replica.job, replica.engine, replica.publisher)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as client:
        yield client


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_frontend_token_with_the_admin_role_is_refused(scheduler, method, path):
    response = await scheduler.request(method, path, headers=bearer(FRONTEND, ["admin"]))
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "unauthorized"
    assert "admin audience (ADMIN_JWT_AUDIENCE)" in body["message"]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_an_admin_token_for_the_admin_audience_is_accepted(scheduler, method, path):
    response = await scheduler.request(method, path, headers=bearer(ADMIN, ["admin"]))
    assert response.status_code == 200, response.text
    user = await scheduler.request(method, path, headers=bearer(ADMIN, ["user"]))
    assert user.status_code == 403 and user.json()["code"] == "forbidden"


async def test_the_openapi_description_names_the_admin_audience(scheduler):
    description = (await scheduler.get("/openapi.json")).json()["info"]["description"]
    assert "ADMIN_JWT_AUDIENCE" in description
