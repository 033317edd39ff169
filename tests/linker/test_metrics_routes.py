"""`http_requests_total` labels every request with the route it reached (path template), the
documentation pages and their assets included; only a path no route serves is `unmatched`."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY

from services.common.telegram import make_bot
from services.linker.app import create_app
from shared.db import create_engine
from shared.publisher import EventPublisher
from tests.linker.helpers import linker_settings

pytestmark = pytest.mark.unit

REQUESTS = [
    ("GET", "/docs", "/docs", 200),
    ("GET", "/docs/oauth2-redirect", "/docs/oauth2-redirect", 200),
    ("GET", "/openapi.json", "/openapi.json", 200),
    ("GET", "/redoc", "/redoc", 200),
    ("GET", "/static-offline-docs/swagger-ui.css", "/static-offline-docs", 200),
    ("GET", "/static-offline-docs/swagger-ui-bundle.js", "/static-offline-docs", 200),
    ("GET", "/healthz", "/healthz", 200),
    ("GET", "/metrics", "/metrics", 200),
    ("GET", "/api/telegram/status", "/api/telegram/status", 401),
    ("DELETE", "/api/telegram/status", "/api/telegram/status", 405),
    ("GET", "/no/such/page", "unmatched", 404),
]


def count(method: str, route: str, status: int) -> float:
    labels = {"service": "linker", "method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


async def test_each_request_is_counted_under_its_route() -> None:
    settings = linker_settings(
        "postgresql://nobody@127.0.0.1:9/none", "amqp://nobody@127.0.0.1:9/", "http://127.0.0.1:9"
    )
    engine = create_engine(settings.database_url.get_secret_value())
    app = create_app(settings, engine, EventPublisher("amqp://127.0.0.1:9/"), make_bot(settings))
    before = {(m, p): count(m, route, s) for m, p, route, s in REQUESTS}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://linker"
    ) as client:
        for method, path, _, status in REQUESTS:
            assert (await client.request(method, path)).status_code == status, path
    await engine.dispose()
    counted = {(m, p): count(m, route, s) - before[(m, p)] for m, p, route, s in REQUESTS}
    expected = {(m, p): 1.0 for m, p, _, _ in REQUESTS}
    expected[("GET", "/static-offline-docs/swagger-ui.css")] = 2.0  # one route, two assets
    expected[("GET", "/static-offline-docs/swagger-ui-bundle.js")] = 2.0
    assert counted == expected
