"""The linker's REST routes for the frontend: the spec's five `/api/telegram/*` endpoints and
`/api/telegram/preferences`, each with the error statuses it documents.

Paths, methods and bodies of the five are the spec's (the OpenAPI document shows them); an
invalid body is a 400 there, a 422 for the preferences. The use cases' refusals are answered by
`errors.py`. Four endpoints and the preferences act for the user of the `Authorization: Bearer`
JWT; verify-link is for a trusted bot that runs elsewhere (`trusted_bot.py`): a chat is linked
only by Telegram's word that the chat redeemed the token (`/start TOKEN` to our bot, or that
bot's). Renaming a route function changes its OpenAPI operationId.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from services.common.auth import CurrentUser
from services.common.jsonapi import JsonApiRoute, error_responses, fail
from services.linker.api.schemas import (
    INSTRUCTIONS,
    STANDIN_INSTRUCTIONS,
    LinkAccountResponse,
    PreferencesBody,
    PreferencesUpdate,
    StatusLinked,
    StatusNotLinked,
    SuccessMessage,
    VerifyLinkRequest,
    VerifyLinkResponse,
    iso_utc,
    parse_chat_id,
)
from services.linker.api.trusted_bot import BOT_KEY_HEADER, VERIFY_SECURITY, bot_caller
from services.linker.service import LinkService

UNAUTHORIZED = "Missing, invalid or expired JWT"
NOT_LINKED = "No Telegram account is linked"


class InvalidBodyIs400(JsonApiRoute):
    """The spec's five: a body that is JSON but not what the endpoint takes is a 400."""

    invalid_body_status = 400
    invalid_body_message = "request body is invalid"


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
        issued = await links.issue_link(user.user_id)
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
        await links.verify_link(body.token, chat_id, body.chat_type, user_id=jwt_user)
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
        await links.send_test_message(user.user_id)
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


def make_preferences_api(links: LinkService) -> APIRouter:
    """`/api/telegram/preferences` (GET and PUT) over `links`; invalid bodies are 422s."""
    router = APIRouter(prefix="/api/telegram", tags=["preferences"], route_class=JsonApiRoute)

    @router.get(
        "/preferences",
        response_model=PreferencesBody,
        responses=error_responses({401: UNAUTHORIZED, 404: NOT_LINKED}),
        summary="Get the notification preferences",
    )
    async def get_preferences(user: CurrentUser) -> PreferencesBody:
        """Muted types, quiet hours, language, time zone and daily report time."""
        return PreferencesBody.of(await links.preferences(user.user_id))

    @router.put(
        "/preferences",
        response_model=PreferencesBody,
        responses=error_responses(
            {
                401: UNAUTHORIZED,
                404: NOT_LINKED,
                422: "JSON, but not valid preferences: unknown type or field, a null other than "
                "`quiet_hours`, bad time or time zone, start = end; `details` says where",
            },
            body=True,
        ),
        summary="Change the notification preferences",
    )
    async def put_preferences(user: CurrentUser, body: PreferencesUpdate) -> PreferencesBody:
        """Change the fields given; answer with all preferences as they are now. The body must
        be `application/json` (415 otherwise) and JSON (400 otherwise)."""
        return PreferencesBody.of(await links.change_preferences(user.user_id, body.apply))

    return router
