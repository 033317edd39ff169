"""Who may call verify-link: only a trusted bot that runs elsewhere, with LINKER_BOT_API_KEY in
`X-Bot-Api-Key` (compared in constant time). A user's JWT is not enough: the chat id in the body
is only the caller's word, so with a JWT alone anyone could link a stranger's chat."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param

from services.common.auth import current_user
from services.common.jsonapi import fail

BOT_KEY_HEADER = "X-Bot-Api-Key"
DISABLED = (
    "verify-link is disabled: our own bot links a chat when the user sends it /start TOKEN; "
    "a bot that runs elsewhere needs LINKER_BOT_API_KEY, sent as X-Bot-Api-Key"
)
_bot_key = APIKeyHeader(
    name=BOT_KEY_HEADER,
    scheme_name="BotApiKey",
    description="LINKER_BOT_API_KEY: only a trusted bot that runs elsewhere has it",
    auto_error=False,
)
VERIFY_SECURITY: list[dict[str, list[str]]] = [{"BotApiKey": [], "HTTPBearer": []}]
"""Beside the bot key alone: the key and a JWT (whose user must own the token)."""


def bot_caller(expected: str | None) -> Any:
    """The dependency of verify-link: the trusted bot's key must match `expected` (403
    `verify_link_disabled` when it is None); returns the user of an `Authorization: Bearer`
    JWT sent too (which must verify), else None."""
    key = expected.encode() if expected is not None else None

    async def caller(
        request: Request, given: Annotated[str | None, Depends(_bot_key)]
    ) -> str | None:
        if key is None:
            fail(403, "verify_link_disabled", DISABLED)
        if not given:
            fail(401, "bot_key_missing", f"the {BOT_KEY_HEADER} header is required")
        # Starlette decodes headers as latin-1: encoding back gives the bytes that were sent.
        if not hmac.compare_digest(given.encode("latin-1"), key):
            fail(403, "bot_key_invalid", f"the {BOT_KEY_HEADER} header is wrong")
        return await _optional_user(request)

    return caller


async def _optional_user(request: Request) -> str | None:
    """The user of the request's `Authorization` header when there is one (it must verify)."""
    authorization = request.headers.get("Authorization")
    if not authorization:
        return None
    scheme, token = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not token:
        fail(401, "unauthorized", "the Authorization header must be 'Bearer <JWT>'")
    claims = await current_user(
        request, HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
    )
    return claims.user_id
