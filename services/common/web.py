"""HTTP pieces every service exposes: /healthz, /readyz, /metrics, request ids and JSON errors."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.common import tracing
from services.common.logging import log_context

ReadinessCheck = Callable[[], Awaitable[None]]
"""Raises when a dependency is not reachable."""

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"]
)


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    """A readiness check that runs `SELECT 1`."""

    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check


def broker_check(is_connected: Callable[[], bool]) -> ReadinessCheck:
    """A readiness check on a broker connection's state."""

    async def check() -> None:
        if not is_connected():
            raise ConnectionError("broker connection is closed")

    return check


def health_router(
    checks: dict[str, ReadinessCheck],
    timeout: float = 3.0,
    live: dict[str, ReadinessCheck] | None = None,
) -> APIRouter:
    """`/healthz` (the process is alive: the `live` checks pass), `/readyz` (every dependency
    reachable: the `checks` pass), `/metrics`."""
    router = APIRouter(include_in_schema=False)

    async def run(named: dict[str, ReadinessCheck]) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        for name, check in named.items():
            try:
                await asyncio.wait_for(check(), timeout)
                results[name] = "ok"
            except Exception as exc:  # any failure means: not ready (not live)
                results[name] = f"error: {type(exc).__name__}"
        return all(v == "ok" for v in results.values()), results

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        alive, results = await run(live or {})
        body: dict[str, Any] = {"status": "ok" if alive else "stalled"}
        if results:
            body["checks"] = results
        return JSONResponse(body, status_code=200 if alive else 503)

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, results = await run(checks)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def error_body(status: int, detail: Any, code: str | None = None) -> dict[str, Any]:
    """The one JSON error shape of every API, in the spec's style of `status` + `message`."""
    return {"status": "error", "code": code or _code(status), "message": detail}


def _code(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        410: "gone",
        422: "invalid_request",
        429: "rate_limited",
        502: "telegram_error",
        503: "unavailable",
    }.get(status, "error")


REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""A request id we accept from a client; anything else is replaced, never echoed or logged."""


def safe_request_id(given: str | None) -> str:
    """The client's `x-request-id` when it is a short safe token, else a new random one."""
    if given is not None and REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def route_template(app: FastAPI, scope: dict[str, Any]) -> str:
    """The path template of the route a request reached (`/api/telegram/status`, a mount's
    prefix), for metric labels; `unmatched` only when no route serves the path. `scope` is the
    request's as it came in (a mount rewrites the path in the scope it hands on)."""
    route = scope.get("route")
    if route is None:
        # FastAPI records only its own routes in the scope; the docs and openapi.json routes
        # and mounts are Starlette's, so find which of the app's routes takes this path.
        partial = None
        for candidate in app.routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate  # e.g. the path with another method: a 405
        route = route or partial
    return str(getattr(route, "path", "unmatched"))


def install_common(app: FastAPI, service: str) -> None:
    """Request ids, request metrics, the JSON error shape for every error a client can cause, and
    a span for every request when tracing is on."""
    tracing.instrument_app(app)

    @app.middleware("http")
    async def request_context(request: Request, call_next: Any) -> Response:
        request_id = safe_request_id(request.headers.get("x-request-id"))
        started = time.perf_counter()
        arrived = dict(request.scope)
        with log_context(request_id=request_id):
            response: Response = await call_next(request)
        path = route_template(app, {**arrived, "route": request.scope.get("route")})
        HTTP_REQUESTS.labels(service, request.method, path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(service, request.method, path).observe(time.perf_counter() - started)
        response.headers["x-request-id"] = request_id
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        code = None
        if isinstance(detail, dict):
            code, detail = detail.get("code"), detail.get("message", detail)
        return JSONResponse(
            error_body(exc.status_code, detail, code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        body = error_body(422, "request is invalid")
        body["details"] = problems
        return JSONResponse(body, status_code=422)


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling, for a service whose `serve` owns the signals
    and stops its parts in order (uvicorn would otherwise take SIGTERM and re-raise it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @classmethod
    def serving(cls, app: Any, host: str, port: int) -> EmbeddedServer:
        """A server of `app` on `host:port`; logging is the service's, and there is no
        lifespan (the service starts and stops its parts itself)."""
        return cls(uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off"))


def stop_on_signals() -> asyncio.Event:
    """An event SIGTERM or SIGINT sets: the service's `serve` waits on it, then stops its parts
    in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
