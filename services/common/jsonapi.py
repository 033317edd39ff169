"""What every JSON API of ours answers besides its own bodies: documented errors, request bodies
that are JSON or a clear 4xx, and a 503 instead of a crash when a dependency is down.

    app.add_middleware(BodyLimit, prefix="/api/")          # 413 `body_too_large` over 16 KiB
    router = APIRouter(route_class=JsonApiRoute)           # 415, 400 `invalid_json`, 422, 503
    @router.put("/x", responses=error_responses({404: "No such thing"}, body=True))

Errors have web.py's shape (`ErrorBody` is its OpenAPI schema). In a route of `JsonApiRoute`,
before the body is validated: a body whose Content-Type is not JSON is a 415
`unsupported_media_type`; one that is not JSON (bad syntax, not UTF-8, nested too deep) a 400
`invalid_json`; one that is JSON but not what the route takes a 422 `invalid_request` with
`details` (400 `bad_request` in a route class with `invalid_body_status = 400`). An unreachable
database or broker is a 503 `unavailable` with Retry-After, never a 500.
"""

from __future__ import annotations

import email.message
import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Literal, NoReturn

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.web import error_body

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
"""The largest request body an API route reads (every body of ours is well under 1 KiB)."""
UNAVAILABLE_RETRY_SECONDS = 5
UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # the connection pool's
    ConnectionError,
    TimeoutError,
)
"""What an unreachable database or broker raises: answered 503, not 500."""


class ErrorBody(BaseModel):
    """Every error of every endpoint."""

    status: Literal["error"] = "error"
    code: str = Field(description="Stable, machine-readable", examples=["unauthorized"])
    message: Any = Field(description="What went wrong, for people")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Invalid bodies: one entry per problem (`field`, `message`)"
    )


GENERIC = {
    400: "The request body is not JSON, or not what this endpoint takes",
    401: "Missing, invalid or expired credentials",
    403: "The credentials do not allow this",
    404: "Not found",
    413: f"The request body is larger than {MAX_BODY_BYTES} bytes",
    415: "The request body is not `application/json`",
    422: "The request is invalid; `details` says where",
    429: "Too many requests; wait for Retry-After seconds",
    502: "Telegram refused the message; the message says why",
    503: "A dependency (database, broker, Telegram) is unreachable; retry after Retry-After",
}
_RETRY_AFTER = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 1},
}


def error_responses(
    described: dict[int, str | None], *, body: bool = False
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses (None: the generic description), plus 503
    (every route touches the database) and, with `body=True`, 400, 413 and 415."""
    statuses: dict[int, str | None] = {503: None}
    if body:
        statuses |= {400: None, 413: None, 415: None}
    statuses |= described
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(statuses):
        entry: dict[str, Any] = {
            "model": ErrorBody,
            "description": statuses[status] or GENERIC[status],
        }
        if status == 429:
            entry["headers"] = {"Retry-After": {**_RETRY_AFTER, "required": True}}
        elif status in (502, 503):
            entry["headers"] = {"Retry-After": {**_RETRY_AFTER, "required": False}}
        responses[status] = entry
    return responses


def is_json_media_type(content_type: str | None) -> bool:
    """True for `application/json` and `application/*+json` (parameters allowed)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def fail(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> NoReturn:
    """Raise the error `status` with a stable `code` and a `message` for people."""
    raise HTTPException(status, {"code": code, "message": message}, headers=headers)


def retry_after(seconds: float) -> dict[str, str]:
    """The Retry-After header for waiting `seconds` (at least 1, whole seconds)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


async def _read_json_body(request: Request) -> None:
    """Read and parse the body (cached on `request` for FastAPI), or raise the 4xx that says why."""
    body = await request.body()  # BodyLimit raises the 413 here
    if not body:
        return
    if not is_json_media_type(request.headers.get("content-type")):
        fail(415, "unsupported_media_type", "send the body as JSON: Content-Type: application/json")
    try:
        await request.json()
    except (ValueError, RecursionError):  # bad syntax, not UTF-8, nested too deep
        fail(400, "invalid_json", "the request body is not valid JSON")


class JsonApiRoute(APIRoute):
    """A route that answers every malformed body and unreachable dependency with a documented
    4xx/503 in the common error shape (see the module docstring)."""

    invalid_body_status: ClassVar[int] = 422
    invalid_body_message: ClassVar[str] = "request is invalid"

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def route(request: Request) -> Response:
            try:
                if takes_body:
                    await _read_json_body(request)
                return await handler(request)
            except RequestValidationError as exc:
                return self._invalid(exc)
            except UNAVAILABLE as exc:
                log.error("dependency unavailable: %s", type(exc).__name__)
                body = error_body(503, "a dependency is unavailable; try again shortly")
                headers = retry_after(UNAVAILABLE_RETRY_SECONDS)
                return JSONResponse(body, status_code=503, headers=headers)

        return route

    def _invalid(self, exc: RequestValidationError) -> JSONResponse:
        body = error_body(self.invalid_body_status, self.invalid_body_message)
        body["details"] = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        return JSONResponse(body, status_code=self.invalid_body_status)


class _TooLarge(HTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413,
            {"code": "body_too_large", "message": f"the request body exceeds {max_bytes} bytes"},
        )


class BodyLimit:
    """ASGI middleware: a route under `prefix` that reads more than `max_bytes` of body (or is
    told so by Content-Length) gets a 413 in the common error shape instead of the body."""

    def __init__(self, app: ASGIApp, *, prefix: str, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.prefix = prefix
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared is not None and declared > self.max_bytes:
                raise _TooLarge(self.max_bytes)  # raised in the route: the handlers answer it
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
