"""The one exception handler of the linker's API: each refusal of a use case, its status, body
and Retry-After (the real-server tests see the same through each route)."""

from __future__ import annotations

import json

import pytest

from services.linker.api.errors import answer
from services.linker.errors import (
    NOT_LINKED_MESSAGE,
    BotUnavailable,
    LinkerError,
    NoActiveLink,
    NotLinked,
    RateLimited,
    TelegramRefused,
    TokenRefused,
)
from services.linker.tokens import TokenProblem

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (TokenRefused(TokenProblem.NOT_FOUND), 404, None),
        (TokenRefused(TokenProblem.WRONG_USER), 403, None),
        (TokenRefused(TokenProblem.USED), 410, None),
        (TokenRefused(TokenProblem.REVOKED), 410, None),
        (TokenRefused(TokenProblem.EXPIRED), 410, None),
        (NotLinked(NOT_LINKED_MESSAGE), 404, None),
        (NoActiveLink(NOT_LINKED_MESSAGE), 409, None),
        (RateLimited("at most 3 test messages per minute", 12.2), 429, "13"),
        (RateLimited("too many", 0.0), 429, "1"),
        (TelegramRefused("Forbidden: bot was blocked by the user"), 502, None),
        (TelegramRefused("Too Many Requests", retry_after=7), 502, "7"),
        (BotUnavailable("the bot's username is unknown; try again shortly"), 503, None),
    ],
)
def test_each_refusal_has_its_status(
    error: LinkerError, status: int, retry_after: str | None
) -> None:
    response = answer(error)
    assert response.status_code == status
    assert json.loads(response.body) == {
        "status": "error",
        "code": error.code,
        "message": str(error),
    }
    assert response.headers.get("Retry-After") == retry_after
