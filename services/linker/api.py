"""The REST API for the frontend: the spec's five `/api/telegram/*` endpoints, and preferences.

Paths, methods and success bodies of the five are the spec's (seeds/telegram-bot-integration.md).
Every error is `{"status": "error", "code": ..., "message": ...}`; an invalid request body is a
400 for the five and a 422 for `PUT /preferences`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime, time
from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    model_validator,
)

from services.common.auth import CurrentUser
from services.common.web import error_body
from services.linker.preferences import Preferences, hhmm, is_iana_timezone, parse_hhmm
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


class ErrorBody(BaseModel):
    """Every error of every endpoint."""

    status: Literal["error"] = "error"
    code: str = Field(examples=["unauthorized"])
    message: Any
    details: list[dict[str, Any]] | None = None


def _errors(
    *statuses: int, described_as: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI error responses (and 401); `described_as` replaces the usual descriptions."""
    described = {
        400: "The request body is invalid",
        401: "Missing, invalid or expired JWT",
        403: "The link token belongs to another user",
        404: "No such link token",
        409: "No Telegram account is linked (or notifications are paused)",
        410: "The link token was used, replaced or has expired",
        422: "The request body is invalid",
        429: "Too many requests from this user; see Retry-After",
        502: "Telegram refused the message; the message says why",
        503: "Telegram could not be asked for the bot's username",
    }
    described |= described_as or {}
    return {s: {"model": ErrorBody, "description": described[s]} for s in (401, *statuses)}


# ------------------------------------------------------------------------------ preferences
NotificationType = Literal["post_success", "post_failure", "automation_executed", "daily_summary"]
Language = Literal["ko", "en"]


def _time_zone(value: str) -> str:
    if not is_iana_timezone(value):
        raise ValueError("must be an IANA time zone such as Asia/Seoul or UTC")
    return value


TimeOfDay = Annotated[StrictStr, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
"""HH:MM on a 24-hour clock."""
TimeZoneName = Annotated[
    StrictStr, Field(max_length=64, examples=["Asia/Seoul"]), AfterValidator(_time_zone)
]


class QuietHours(BaseModel):
    """Local times in `timezone`; notifications then wait until `end` (may cross midnight)."""

    model_config = ConfigDict(extra="forbid")

    start: TimeOfDay = Field(examples=["22:00"])
    end: TimeOfDay = Field(examples=["07:00"])

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class PreferencesBody(BaseModel):
    """A linked user's notification preferences."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "muted_types": ["post_success"],
                    "quiet_hours": {"start": "22:00", "end": "07:00"},
                    "language": "ko",
                    "timezone": "Asia/Seoul",
                    "summary_time": "09:00",
                }
            ]
        }
    )

    muted_types: list[NotificationType] = Field(
        description="Types that are not sent (`daily_summary` muted: no daily report)"
    )
    quiet_hours: QuietHours | None = Field(description="null: no quiet hours")
    language: Language = Field(description="Language of the notifications and the bot")
    timezone: str = Field(description="IANA time zone of quiet hours and the daily report")
    summary_time: str = Field(description="Local time of the daily report, HH:MM")

    @classmethod
    def of(cls, prefs: Preferences) -> PreferencesBody:
        """The body showing `prefs`."""
        quiet = None
        if prefs.quiet_hours is not None:
            quiet = {"start": hhmm(prefs.quiet_hours[0]), "end": hhmm(prefs.quiet_hours[1])}
        return cls.model_validate(
            {
                "muted_types": list(prefs.muted_types),
                "quiet_hours": quiet,
                "language": prefs.language,
                "timezone": prefs.timezone,
                "summary_time": hhmm(prefs.summary_time),
            }
        )


def _update_schema(schema: dict[str, Any]) -> None:
    # None is only the "not given" default: null is refused for all but quiet_hours.
    for name, field in schema["properties"].items():
        options = field.pop("anyOf", None) if name != "quiet_hours" else None
        if options:
            field.update(next(o for o in options if o.get("type") != "null"))
    schema["examples"] = [
        {"muted_types": ["post_success", "automation_executed"]},
        {"quiet_hours": {"start": "23:00", "end": "08:00"}, "language": "en"},
        {"timezone": "Asia/Seoul", "summary_time": "08:30"},
        {"quiet_hours": None},
    ]


class PreferencesUpdate(BaseModel):
    """The preferences to change: only the fields given change (`quiet_hours: null` ends them)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_update_schema)

    muted_types: list[NotificationType] | None = Field(
        default=None, description="Replaces the whole list; `[]` unmutes everything"
    )
    quiet_hours: QuietHours | None = Field(default=None, description="null: no quiet hours")
    language: Language | None = None
    timezone: TimeZoneName | None = None
    summary_time: TimeOfDay | None = Field(default=None, examples=["09:00"])

    @model_validator(mode="before")
    @classmethod
    def _only_quiet_hours_may_be_null(cls, value: Any) -> Any:
        if isinstance(value, dict):
            nulls = sorted(k for k, v in value.items() if v is None and k != "quiet_hours")
            if nulls:
                raise ValueError(f"may not be null: {', '.join(nulls)}")
        return value

    def apply(self, prefs: Preferences) -> Preferences:
        """`prefs` with the given fields changed."""
        given = self.model_fields_set
        changed = prefs
        if "muted_types" in given and self.muted_types is not None:
            changed = replace(changed, muted_types=())
            for event_type in self.muted_types:
                changed = changed.muting(event_type, True)
        if "quiet_hours" in given:
            quiet = self.quiet_hours
            changed = replace(
                changed,
                quiet_hours=None if quiet is None else (_time(quiet.start), _time(quiet.end)),
            )
        if self.language is not None:
            changed = replace(changed, language=self.language)
        if self.timezone is not None:
            changed = replace(changed, timezone=self.timezone)
        if self.summary_time is not None:
            changed = replace(changed, summary_time=_time(self.summary_time))
        return changed


def _time(value: str) -> time:
    parsed = parse_hhmm(value)
    assert parsed is not None  # validated by TimeOfDay
    return parsed


class InvalidBodyIs400(APIRoute):
    """A route whose invalid request body is a 400 with the common error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                body = error_body(400, "request body is invalid")
                body["details"] = [
                    {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                    for e in exc.errors()
                ]
                return JSONResponse(body, status_code=400)

        return route


def _fail(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> NoReturn:
    raise HTTPException(status, {"code": code, "message": message}, headers=headers)


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


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


TOKEN_STATUS = {
    TokenProblem.NOT_FOUND: 404,
    TokenProblem.WRONG_USER: 403,
    TokenProblem.USED: 410,
    TokenProblem.REVOKED: 410,
    TokenProblem.EXPIRED: 410,
}


def make_api(links: LinkService) -> APIRouter:
    """The `/api/telegram` router over `links`."""
    router = APIRouter(prefix="/api/telegram", tags=["telegram"], route_class=InvalidBodyIs400)

    @router.get(
        "/link-account",
        response_model=LinkAccountResponse,
        responses=_errors(429, 503),
        summary="Generate a Telegram account linking URL",
    )
    async def link_account(user: CurrentUser, response: Response) -> LinkAccountResponse:
        """A single-use deep link; asking again invalidates the earlier unused one."""
        try:
            issued = await links.issue_link(user.user_id)
        except RateLimited as exc:
            _fail(429, exc.code, str(exc), _retry_after(exc.retry_after))
        except BotUnavailable as exc:
            _fail(503, exc.code, str(exc))
        response.headers["Cache-Control"] = "no-store"
        return LinkAccountResponse(
            linking_url=issued.linking_url, token=issued.token, bot_username=issued.bot_username
        )

    @router.post(
        "/verify-link",
        response_model=VerifyLinkResponse,
        responses=_errors(400, 403, 404, 410, 502),
        summary="Verify Telegram linking and save the chat id",
    )
    async def verify_link(user: CurrentUser, body: VerifyLinkRequest) -> VerifyLinkResponse:
        """Redeem the user's token for `chat_id` and send the chat a confirmation."""
        chat_id = parse_chat_id(body.chat_id)
        if chat_id is None:
            _fail(400, "invalid_chat_id", "chat_id must be a Telegram chat id (an integer)")
        try:
            await links.verify_link(user.user_id, body.token, chat_id, body.chat_type)
        except TokenRefused as exc:
            _fail(TOKEN_STATUS[exc.problem], exc.code, str(exc))
        except TelegramRefused as exc:
            headers = _retry_after(exc.retry_after) if exc.retry_after else None
            _fail(502, exc.code, str(exc), headers)
        return VerifyLinkResponse()

    @router.get(
        "/status",
        response_model=StatusLinked | StatusNotLinked,
        responses=_errors(),
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
        responses=_errors(409, 429, 502),
        summary="Send a test message to the linked chat",
    )
    async def send_test_message(user: CurrentUser) -> SuccessMessage:
        """Succeeds only when Telegram accepted the message."""
        try:
            await links.send_test_message(user.user_id)
        except NotLinked as exc:
            _fail(409, exc.code, str(exc))
        except RateLimited as exc:
            _fail(429, exc.code, str(exc), _retry_after(exc.retry_after))
        except TelegramRefused as exc:
            headers = _retry_after(exc.retry_after) if exc.retry_after else None
            _fail(502, exc.code, str(exc), headers)
        return SuccessMessage(message="Test message sent successfully")

    @router.post(
        "/unlink-account",
        response_model=SuccessMessage,
        responses=_errors(),
        summary="Unlink the Telegram account",
    )
    async def unlink_account(user: CurrentUser) -> SuccessMessage:
        """Remove the chat and disable notifications; succeeds when nothing was linked too."""
        await links.unlink(user.user_id)
        return SuccessMessage(message="Telegram account unlinked successfully")

    return router


def make_preferences_api(links: LinkService) -> APIRouter:
    """`/api/telegram/preferences` (GET and PUT) over `links`; invalid bodies are 422s."""
    router = APIRouter(prefix="/api/telegram", tags=["preferences"])
    described_as = {
        404: "No Telegram account is linked",
        422: "Invalid body: unknown type or field, bad time or time zone, start = end",
    }

    @router.get(
        "/preferences",
        response_model=PreferencesBody,
        responses=_errors(404, described_as=described_as),
        summary="Get the notification preferences",
    )
    async def get_preferences(user: CurrentUser) -> PreferencesBody:
        """Muted types, quiet hours, language, time zone and daily report time."""
        try:
            return PreferencesBody.of(await links.preferences(user.user_id))
        except NotLinked as exc:
            _fail(404, exc.code, str(exc))

    @router.put(
        "/preferences",
        response_model=PreferencesBody,
        responses=_errors(404, 422, described_as=described_as),
        summary="Change the notification preferences",
    )
    async def put_preferences(user: CurrentUser, body: PreferencesUpdate) -> PreferencesBody:
        """Change the fields given; answer with all preferences as they are now."""
        try:
            return PreferencesBody.of(await links.change_preferences(user.user_id, body.apply))
        except NotLinked as exc:
            _fail(404, exc.code, str(exc))

    return router
