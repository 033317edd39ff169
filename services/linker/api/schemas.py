"""`/api/telegram/preferences` (GET and PUT): a linked user's notification preferences.

A body that is JSON but not valid preferences is a 422 with `details`; the rest of the errors
are `services.common.jsonapi`'s (400 not JSON, 413, 415, 503).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, model_validator

from services.common.auth import CurrentUser
from services.common.jsonapi import JsonApiRoute, error_responses, fail
from services.linker.preferences import Preferences, hhmm, is_iana_timezone, parse_hhmm
from services.linker.service import LinkService, NotLinked

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


UNAUTHORIZED = "Missing, invalid or expired JWT"
NOT_LINKED = "No Telegram account is linked"


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
        try:
            return PreferencesBody.of(await links.preferences(user.user_id))
        except NotLinked as exc:
            fail(404, exc.code, str(exc))

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
        try:
            return PreferencesBody.of(await links.change_preferences(user.user_id, body.apply))
        except NotLinked as exc:
            fail(404, exc.code, str(exc))

    return router
