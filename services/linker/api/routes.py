"""The REST API for the frontend: the spec's five `/api/telegram/*` endpoints.

Paths, methods and bodies of the five are the spec's (seeds/telegram-bot-integration.md). Every
error is `{"status": "error", "code": ..., "message": ...}`; an invalid request body is a 400.
Four endpoints act for the user of the `Authorization: Bearer` JWT. verify-link is for a trusted
bot that runs elsewhere (`X-Bot-Api-Key`, LINKER_BOT_API_KEY): a chat is linked only by
Telegram's word that the chat redeemed the token (`/start TOKEN` to our bot, or that bot's).
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr

from services.common.auth import CurrentUser, current_user
from services.common.jsonapi import JsonApiRoute, error_responses, fail, retry_after
from services.linker.service import (
    BotUnavailable,
    LinkService,
    NotLinked,
    RateLimited,
    TelegramRefused,
    TokenRefused,
)
from services.linker.tokens import TokenProblem

INSTRUCTIONS = "Click the link to open Telegram and send /start to the bot to complete linking."
STANDIN_INSTRUCTIONS = (
    "Development: this linker talks to the local Telegram stand-in, not Telegram. Open its inbox "
    "at {inbox}/#chat=42 (or type a chat id in the inbox's chat id box and press Open) and send "
    "/start {token} there to complete linking."
)
NOT_LINKED_MESSAGE = "Telegram account not linked. Use /link-account endpoint to connect."
CHAT_TYPES = ("private", "group", "supergroup", "channel")
MAX_CHAT_ID = 10**15
"""Exclusive bound: Telegram's ids fit in 52 bits; a supergroup's `-100…` id has 13 digits."""
_CHAT_ID = re.compile(r"^-?[1-9][0-9]{0,14}$")


def _integral(value: Any) -> Any:
    # JSON Schema counts 42.0 as an integer; bools stay refused (StrictInt).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


ChatIdNumber = Annotated[
    StrictInt,
    BeforeValidator(_integral),
    # Checked by parse_chat_id (a 400 that says why); declared here for the documentation.
    Field(
        json_schema_extra={
            "exclusiveMinimum": -MAX_CHAT_ID,
            "exclusiveMaximum": MAX_CHAT_ID,
            "not": {"const": 0},
        }
    ),
]
ChatIdText = Annotated[StrictStr, Field(pattern=_CHAT_ID.pattern)]


class LinkAccountResponse(BaseModel):
    """A fresh deep link for the user to open."""

    status: Literal["success"] = "success"
    linking_url: str = Field(examples=["https://t.me/piwpiwtelegrambot?start=Xb2..."])
    token: str
    instructions: str = INSTRUCTIONS
    bot_username: str = Field(examples=["piwpiwtelegrambot"])


class VerifyLinkRequest(BaseModel):
    """A link token and the chat that redeemed it (sent by a bot that runs elsewhere)."""

    model_config = ConfigDict(extra="ignore")

    token: StrictStr = Field(max_length=256, examples=["Xb2..."])
    chat_id: ChatIdNumber | ChatIdText = Field(
        description="The Telegram chat id: an integer, or a string of digits",
        examples=["7910169750"],
    )
    chat_type: Literal["private", "group", "supergroup", "channel"] | None = Field(
        default=None, description="Optional; inferred from the id's sign when absent"
    )


class VerifyLinkResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Telegram account linked successfully"
    telegram_enabled: bool = True


class StatusLinked(BaseModel):
    """The user has a linked chat (`telegram_enabled` is false while notifications are paused)."""

    telegram_enabled: bool
    telegram_chat_id: str = Field(examples=["7910169750"])
    linked_at: str | None = Field(description="ISO 8601, UTC", examples=["2026-02-26T10:30:00Z"])


class StatusNotLinked(BaseModel):
    """The user has no linked chat."""

    telegram_enabled: Literal[False] = False
    message: str = NOT_LINKED_MESSAGE


class SuccessMessage(BaseModel):
    status: Literal["success"] = "success"
    message: str


def parse_chat_id(value: int | str) -> int | None:
    """The chat id as an integer, or None when it is not a Telegram chat id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _CHAT_ID.match(value):
            return None
        value = int(value)
    if value == 0 or abs(value) >= MAX_CHAT_ID:
        return None
    return value


def iso_utc(moment: datetime | None) -> str | None:
    """`2026-02-26T10:30:00Z`."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class InvalidBodyIs400(JsonApiRoute):
    """The spec's five: a body that is JSON but not what the endpoint takes is a 400."""

    invalid_body_status = 400
    invalid_body_message = "request body is invalid"


# ------------------------------------------------------------------------ the trusted bot
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


TOKEN_STATUS = {
    TokenProblem.NOT_FOUND: 404,
    TokenProblem.WRONG_USER: 403,
    TokenProblem.USED: 410,
    TokenProblem.REVOKED: 410,
    TokenProblem.EXPIRED: 410,
}
UNAUTHORIZED = "Missing, invalid or expired JWT"
VERIFY_SECURITY: list[dict[str, list[str]]] = [{"BotApiKey": [], "HTTPBearer": []}]
"""Beside the bot key alone: the key and a JWT (whose user must own the token)."""


def make_api(
    links: LinkService, bot_api_key: str | None = None, standin_inbox: str | None = None
) -> APIRouter:
    """The `/api/telegram` router over `links`; verify-link needs `bot_api_key` (None: off).
    With `standin_inbox` (development with the local stand-in) link-account's instructions say
    how to link there."""
    router = APIRouter(prefix="/api/telegram", tags=["telegram"], route_class=InvalidBodyIs400)
    trusted_bot = bot_caller(bot_api_key)

    @router.get(
        "/link-account",
        response_model=LinkAccountResponse,
        responses=error_responses(
            {
                401: UNAUTHORIZED,
                429: "More than 10 linking URLs this minute for this user; see Retry-After",
                503: "The bot's username could not be learned from Telegram, or the database "
                "is unreachable",
            }
        ),
        summary="Generate a Telegram account linking URL",
    )
    async def link_account(user: CurrentUser, response: Response) -> LinkAccountResponse:
        """A single-use deep link; asking again invalidates the earlier unused one."""
        try:
            issued = await links.issue_link(user.user_id)
        except RateLimited as exc:
            fail(429, exc.code, str(exc), retry_after(exc.retry_after))
        except BotUnavailable as exc:
            fail(503, exc.code, str(exc))
        response.headers["Cache-Control"] = "no-store"
        instructions = INSTRUCTIONS
        if standin_inbox is not None:
            instructions = STANDIN_INSTRUCTIONS.format(inbox=standin_inbox, token=issued.token)
        return LinkAccountResponse(
            linking_url=issued.linking_url,
            token=issued.token,
            bot_username=issued.bot_username,
            instructions=instructions,
        )

    @router.post(
        "/verify-link",
        response_model=VerifyLinkResponse,
        responses=error_responses(
            {
                400: "The body is not JSON, or not `{token, chat_id}` (`chat_id` an integer "
                "Telegram chat id)",
                401: f"`{BOT_KEY_HEADER}` is missing (`bot_key_missing`), or an "
                "`Authorization` header was sent and is not a valid Bearer JWT (`unauthorized`)",
                403: "verify-link is disabled: LINKER_BOT_API_KEY is not set "
                f"(`verify_link_disabled`); `{BOT_KEY_HEADER}` is wrong (`bot_key_invalid`); "
                "or the link token is not the JWT's user's (`token_wrong_user`)",
                404: "No such link token (`token_not_found`)",
                410: "The link token was used, replaced or has expired (`token_used`, "
                "`token_revoked`, `token_expired`)",
                502: "Telegram refused the confirmation (the bot cannot reach the chat): nothing "
                "was linked and the token can be used again",
            },
            body=True,
        ),
        openapi_extra={"security": VERIFY_SECURITY},
        summary="Verify Telegram linking and save the chat id",
    )
    async def verify_link(
        body: VerifyLinkRequest,
        jwt_user: str | None = Depends(trusted_bot),  # a closure: not expressible as Annotated
    ) -> VerifyLinkResponse:
        """For a trusted bot that runs elsewhere and saw `/start TOKEN` in `chat_id`: link the
        token's user to that chat and confirm there. Needs `X-Bot-Api-Key`; a user JWT is not
        enough (it would let anyone link any chat). With a JWT as well, the token must be its
        user's. One call per token wins, whatever the concurrency: the others get 410."""
        chat_id = parse_chat_id(body.chat_id)
        if chat_id is None:
            fail(400, "invalid_chat_id", "chat_id must be a Telegram chat id (an integer)")
        try:
            await links.verify_link(body.token, chat_id, body.chat_type, user_id=jwt_user)
        except TokenRefused as exc:
            fail(TOKEN_STATUS[exc.problem], exc.code, str(exc))
        except TelegramRefused as exc:
            headers = retry_after(exc.retry_after) if exc.retry_after else None
            fail(502, exc.code, str(exc), headers)
        return VerifyLinkResponse()

    @router.get(
        "/status",
        response_model=StatusLinked | StatusNotLinked,
        responses=error_responses({401: UNAUTHORIZED}),
        summary="Check the Telegram connection status",
    )
    async def status(user: CurrentUser) -> StatusLinked | StatusNotLinked:
        """Linked: the chat and when; not linked: the spec's message."""
        found = await links.status(user.user_id)
        if not found.linked:
            return StatusNotLinked()
        return StatusLinked(
            telegram_enabled=found.enabled,
            telegram_chat_id=str(found.chat_id),
            linked_at=iso_utc(found.linked_at),
        )

    @router.post(
        "/send-test-message",
        response_model=SuccessMessage,
        responses=error_responses(
            {
                401: UNAUTHORIZED,
                409: "No Telegram account is linked, or notifications are paused",
                429: "More test messages this minute than TEST_MESSAGES_PER_MINUTE; see "
                "Retry-After",
                502: None,
            }
        ),
        summary="Send a test message to the linked chat",
    )
    async def send_test_message(user: CurrentUser) -> SuccessMessage:
        """Succeeds only when Telegram accepted the message."""
        try:
            await links.send_test_message(user.user_id)
        except NotLinked as exc:
            fail(409, exc.code, str(exc))
        except RateLimited as exc:
            fail(429, exc.code, str(exc), retry_after(exc.retry_after))
        except TelegramRefused as exc:
            headers = retry_after(exc.retry_after) if exc.retry_after else None
            fail(502, exc.code, str(exc), headers)
        return SuccessMessage(message="Test message sent successfully")

    @router.post(
        "/unlink-account",
        response_model=SuccessMessage,
        responses=error_responses({401: UNAUTHORIZED}),
        summary="Unlink the Telegram account",
    )
    async def unlink_account(user: CurrentUser) -> SuccessMessage:
        """Remove the chat and disable notifications; succeeds when nothing was linked too."""
        await links.unlink(user.user_id)
        return SuccessMessage(message="Telegram account unlinked successfully")

    return router
