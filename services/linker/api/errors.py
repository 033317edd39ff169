"""The one place where the use cases' refusals become HTTP answers: each `LinkerError` its
status, in the common error shape, with Retry-After when waiting helps. Routes do not catch
them; each route documents the statuses it can answer (`routes.py`)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common.jsonapi import retry_after
from services.common.web import error_body
from services.linker.errors import (
    BotUnavailable,
    LinkerError,
    NoActiveLink,
    NotLinked,
    RateLimited,
    TelegramRefused,
    TokenRefused,
)
from services.linker.tokens import TokenProblem

STATUS: dict[type[LinkerError], int] = {
    NoActiveLink: 409,  # a test message with nowhere to go: a conflict with the link's state
    NotLinked: 404,  # the preferences of a user without a link: no such resource
    RateLimited: 429,
    TelegramRefused: 502,
    BotUnavailable: 503,
}
"""The status of each refusal; the most specific class wins (`NoActiveLink` is a `NotLinked`)."""
TOKEN_STATUS = {
    TokenProblem.NOT_FOUND: 404,
    TokenProblem.WRONG_USER: 403,
    TokenProblem.USED: 410,
    TokenProblem.REVOKED: 410,
    TokenProblem.EXPIRED: 410,
}


def status_of(error: LinkerError) -> int:
    """The HTTP status answering `error` (one of the handled kinds)."""
    if isinstance(error, TokenRefused):
        return TOKEN_STATUS[error.problem]
    return next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)


def _wait(error: LinkerError) -> float | None:
    """Seconds to wait before trying again: after a rate limit always, after Telegram's refusal
    when Telegram said so; None: no Retry-After."""
    if isinstance(error, RateLimited):
        return error.retry_after
    if isinstance(error, TelegramRefused):
        return error.retry_after or None
    return None


def answer(error: LinkerError) -> JSONResponse:
    """The response to `error`: `{"status": "error", "code": error.code, "message": ...}`."""
    wait = _wait(error)
    headers = retry_after(wait) if wait is not None else None
    status = status_of(error)
    return JSONResponse(error_body(status, str(error), error.code), status, headers=headers)


def install_error_handler(app: FastAPI) -> None:
    """Answer the refusals of `STATUS` and `TokenRefused` raised by any route of `app`; any other
    `LinkerError` stays a server error (no route lets one out)."""

    async def handle(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, LinkerError)
        return answer(error)

    handled: list[type[LinkerError]] = [TokenRefused, *STATUS]
    for kind in handled:
        app.add_exception_handler(kind, handle)
