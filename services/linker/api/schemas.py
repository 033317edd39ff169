"""The bodies of the linker's REST API: the spec's five endpoints and the preferences, with the
conversions between them and the use cases' values. Renaming a model renames its OpenAPI schema."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from services.linker.errors import NOT_LINKED_MESSAGE
from services.linker.preferences import (
    MAX_THREAD_ID,
    MUTABLE_TYPES,
    Preferences,
    hhmm,
    is_iana_timezone,
    ordered_types,
    parse_hhmm,
)

# ------------------------------------------------------------------------ the spec's five
INSTRUCTIONS = "Click the link to open Telegram and send /start to the bot to complete linking."
STANDIN_INSTRUCTIONS = (
    "Development: this linker talks to the local Telegram stand-in, not Telegram. Open its inbox "
    "at {inbox}/#chat=42 (or type a chat id in the inbox's chat id box and press Open) and send "
    "/start {token} there to complete linking."
)
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


# ------------------------------------------------------------------------ the preferences
# The types a user may mute, as declared in `shared.contract.TYPES`: validated, and the OpenAPI
# document's enum, as a Literal of them (built at run time, so type checkers see a str).
if TYPE_CHECKING:
    NotificationType = str
else:
    NotificationType = Literal[MUTABLE_TYPES]
Language = Literal["ko", "en"]
QuietHoursMode = Literal["hold", "silent"]


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
                    "silent_types": ["daily_summary"],
                    "quiet_hours_mode": "hold",
                    "link_previews": True,
                    "post_images": True,
                    "message_thread_id": None,
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
    silent_types: list[NotificationType] = Field(
        description="Types sent without a sound (`disable_notification`); a type also in "
        "`muted_types` is muted. New links: `daily_summary`"
    )
    quiet_hours_mode: QuietHoursMode = Field(
        description="`hold`: notifications wait until quiet hours end and arrive as one message; "
        "`silent`: they arrive at once, without a sound"
    )
    link_previews: bool = Field(
        description="Notifications with a post link show a small preview of the post; "
        "false: no previews"
    )
    post_images: bool = Field(
        description="A post_success or post_failure notification whose event carries "
        "`data.image_url` is sent as that image with the text as its caption; false: always "
        "a text message"
    )
    message_thread_id: int | None = Field(
        default=None,
        description="The forum topic of the linked group that notifications go to; null: the "
        "chat itself (a forum's General topic). Set by linking inside a topic",
    )

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
                "silent_types": list(prefs.silent_types),
                "quiet_hours_mode": prefs.quiet_mode,
                "link_previews": prefs.link_previews,
                "post_images": prefs.post_images,
                "message_thread_id": prefs.message_thread_id,
            }
        )


def _update_schema(schema: dict[str, Any]) -> None:
    # None is only the "not given" default: null is refused for all but the nullable ones.
    for name, field in schema["properties"].items():
        options = field.pop("anyOf", None) if name not in NULLABLE else None
        if options:
            field.update(next(o for o in options if o.get("type") != "null"))
    schema["examples"] = [
        {"muted_types": ["post_success", "automation_executed"]},
        {"quiet_hours": {"start": "23:00", "end": "08:00"}, "language": "en"},
        {"timezone": "Asia/Seoul", "summary_time": "08:30"},
        {"quiet_hours": None},
        {"silent_types": ["daily_summary", "automation_executed"], "quiet_hours_mode": "silent"},
        {"link_previews": False},
        {"post_images": False},
        {"message_thread_id": 42},
        {"message_thread_id": None},
    ]


NULLABLE = ("quiet_hours", "message_thread_id")
"""The preferences whose null means something: no quiet hours, no topic (General)."""
ThreadId = Annotated[StrictInt, Ge(1), Le(MAX_THREAD_ID), BeforeValidator(_integral)]


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
    silent_types: list[NotificationType] | None = Field(
        default=None, description="Replaces the whole list; `[]`: every type with a sound"
    )
    quiet_hours_mode: QuietHoursMode | None = None
    link_previews: StrictBool | None = None
    post_images: StrictBool | None = Field(
        default=None, description="false: post notifications are text, never an image"
    )
    message_thread_id: ThreadId | None = Field(
        default=None,
        description="The forum topic notifications go to (the linked group must be a forum "
        "with that topic); null: the chat itself (General)",
    )

    @model_validator(mode="before")
    @classmethod
    def _only_quiet_hours_may_be_null(cls, value: Any) -> Any:
        if isinstance(value, dict):
            nulls = sorted(k for k, v in value.items() if v is None and k not in NULLABLE)
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
        if self.silent_types is not None:
            changed = replace(changed, silent_types=ordered_types(self.silent_types))
        if self.quiet_hours_mode is not None:
            changed = replace(changed, quiet_mode=self.quiet_hours_mode)
        if self.link_previews is not None:
            changed = replace(changed, link_previews=self.link_previews)
        if self.post_images is not None:
            changed = replace(changed, post_images=self.post_images)
        if "message_thread_id" in given:
            changed = replace(changed, message_thread_id=self.message_thread_id)
        return changed


def _time(value: str) -> time:
    parsed = parse_hhmm(value)
    assert parsed is not None  # validated by TimeOfDay
    return parsed
