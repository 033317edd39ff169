"""The wire contract between the SNS platform and the Telegram services, in one module on purpose
(hence its length): the one file a publishing team reads to know every name, header and model.

Other teams code against these names and models; change them only with a version bump
(see docs/architecture.md, "The wire contract"). Everything about the wire is defined here, once.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

CONTRACT_VERSION = "1.0.0"

EXCHANGE = "sns.events"
"""Topic exchange every event is published to; the routing key is the event type."""
INTERNAL_EXCHANGE = "sns.telegram.internal"
"""Topic exchange of our services' internal events (`telegram.blocked`, `telegram.chat_migrated`):
only our services may write to it, and each message is signed (services/common/internal_events.py).
"""
DLX_EXCHANGE = "sns.events.dlx"
"""Dead-letter exchange of the notifier queue."""
NOTIFIER_QUEUE = "notifier.events"
NOTIFIER_DLQ = "notifier.events.dlq"
LINKER_QUEUE = "linker.events"
"""The linker's queue for the notifier's `telegram.*` events (blocked, chat migrated)."""
LINKER_DLQ = "linker.events.dlq"
"""The linker's dead-letter queue (its dead letters carry this routing key)."""

DLQ_REASON_HEADER = "x-dlq-reason"
"""Header naming why a message was dead-lettered (`invalid`, `undeliverable`, ...)."""
DLQ_ERROR_HEADER = "x-dlq-error"
"""Header with the human-readable error that put the message in the DLQ."""
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
"""Header of a dead letter the notifier put in its DLQ: the routing key it was published with."""
DEAD_LETTERED_AT_HEADER = "x-dead-lettered-at"
"""Header of a dead letter the notifier put in its DLQ: when (ISO 8601, UTC)."""
DEATH_HEADER = "x-death"
"""RabbitMQ's record of dead-letterings (a quorum queue's delivery limit, the linker's rejects)."""
SIGNATURE_HEADER = "x-sns-signature"
"""Header of an internal event: `v1=` and the hex HMAC-SHA256 of its body, keyed from the bot
token (services/common/internal_events.py)."""

MAX_EVENT_BYTES = 256 * 1024
"""Bodies larger than this are rejected as invalid without being parsed."""


class EventType(StrEnum):
    """Every routing key on `sns.events` that this system publishes or consumes."""

    # Each type is declared by its entry in `TYPES` (the docstring above is the AsyncAPI
    # document's description of the enum: keep it).
    POST_SUCCESS = "post_success"
    POST_FAILURE = "post_failure"
    AUTOMATION_EXECUTED = "automation_executed"
    DAILY_SUMMARY = "daily_summary"
    POST_METRICS_UPDATED = "post_metrics_updated"
    POST_RETRY_REQUESTED = "post_retry_requested"
    # Internal events of the Telegram services.
    TELEGRAM_LINKED = "telegram.linked"
    TELEGRAM_UNLINKED = "telegram.unlinked"
    TELEGRAM_BLOCKED = "telegram.blocked"
    TELEGRAM_CHAT_MIGRATED = "telegram.chat_migrated"
    TELEGRAM_TOPIC_CLOSED = "telegram.topic_closed"


MAX_COUNT = 2**31 - 1
"""The largest count (likes, comments, posts, engagement) an event may carry: the database keeps
counts in 32-bit integers, and no post has more."""
MAX_LIST_ITEMS = 100
"""The longest list (or mapping) a `data` field may hold (e.g. an automation's platforms)."""
PLATFORM_CHARS = 64
"""The longest platform name (it is a column of `activity`)."""
POST_ID_CHARS = 200
"""The longest post id (it is a column of `activity`, and edits find the post by it)."""
IMAGE_URL_CHARS = 2048
"""The longest `image_url` (Telegram fetches the photo by it)."""
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2999, 12, 31)
"""Dates and times outside [FIRST_DAY, LAST_DAY] are refused: no SNS post is older than 2000, and
arithmetic on years 1 or 9999 overflows."""

_UNSAFE_IN_IDS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
"""Control characters, lone surrogates and line separators: never in an identifier."""


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _safe_id(value: str) -> str:
    if _UNSAFE_IN_IDS.search(value):
        raise ValueError("must not contain control characters or lone surrogates")
    return value


NonBlank = Annotated[str, AfterValidator(_not_blank)]
Identifier = Annotated[
    str,
    AfterValidator(_not_blank),
    AfterValidator(_safe_id),
    Field(description="Not blank; no control characters or lone surrogates"),
]
"""A name or id we store, look up and log: not blank, no control characters."""


def user_id_as_text(value: Any) -> Any:
    """An integer user id as text: the seed passes integer user ids around; we accept them and
    carry them as text (a bool stays what it is, and is refused)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


UserIdAsText = BeforeValidator(user_id_as_text)
"""Put in a user id field's `Annotated[...]`: integers are accepted, as text."""
Platform = Annotated[Identifier, Field(max_length=PLATFORM_CHARS)]
PostId = Annotated[Identifier, Field(max_length=POST_ID_CHARS)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
ImageUrl = Annotated[
    str | None,
    Field(
        max_length=IMAGE_URL_CHARS,
        description="The post's image, an http(s) URL Telegram can fetch (JPEG/PNG, at most 5 MB): "
        "the notification is sent as this photo with its text as the caption. If Telegram cannot "
        "take the photo, or the value is not an http(s) URL, the notification is sent as text.",
        examples=["https://cdn.example.com/posts/123.jpg"],
    ),
]
"""A post's image: a notification that carries one is a photo with a caption (issue 17)."""


@lru_cache(maxsize=1)
def iana_timezones() -> frozenset[str]:
    """Every IANA time zone name this machine knows (`localtime` is the host's zone, not a name)."""
    return frozenset(available_timezones()) - {"localtime"}


def is_iana_timezone(name: str) -> bool:
    """True for an IANA zone name such as `Asia/Seoul` or `UTC` (not a directory like `Asia`)."""
    return name in iana_timezones()


def _iana_timezone(value: str) -> str:
    if not is_iana_timezone(value):
        raise ValueError("must be an IANA time zone such as Asia/Seoul or UTC")
    return value


def _sane_day(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
    return value


TimeZoneName = Annotated[
    str,
    Field(
        max_length=64,
        description="An IANA time zone name (zoneinfo), e.g. Asia/Seoul or UTC",
        examples=["Asia/Seoul"],
    ),
    AfterValidator(_iana_timezone),
]
Day = Annotated[
    date,
    Field(description=f"A date from {FIRST_DAY} to {LAST_DAY}"),
    AfterValidator(_sane_day),
]


class _Data(BaseModel):
    """Base of every `data` payload: unknown extra fields are tolerated and kept."""

    model_config = ConfigDict(extra="allow", frozen=True)


class PostSuccessData(_Data):
    """`data` of `post_success`: a post was published."""

    platform: Platform
    content: str = ""
    post_url: str | None = None
    likes: Count = 0
    comments: Count = 0
    post_id: PostId | None = None
    image_url: ImageUrl = None


class PostFailureData(_Data):
    """`data` of `post_failure`: a post could not be published."""

    platform: Platform
    error: str
    post_id: PostId | None = None
    image_url: ImageUrl = None


class AutomationExecutedData(_Data):
    """`data` of `automation_executed`: an automation rule ran."""

    automation_name: NonBlank
    platforms: list[Platform] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    execution_time: str


class PostMetricsUpdatedData(_Data):
    """`data` of `post_metrics_updated`: a published post's new counts. The notifier edits the
    post's earlier success message in place instead of sending a new one."""

    post_id: PostId
    likes: Count
    comments: Count
    platform: Platform | None = None


class PostRetryRequestedData(_Data):
    """`data` of `post_retry_requested` (published by the linker when a user presses "Retry" on
    a failure message): the original `post_failure` event's data, and that event's id."""

    original_event_id: uuid.UUID
    platform: Platform
    error: str = ""
    post_id: PostId | None = None


class PlatformStats(_Data):
    """One platform's line of the daily summary."""

    posts: Count
    engagement: Count


class DailySummaryData(_Data):
    """`data` of `daily_summary`: the scheduler's trigger for one user and one local day.

    `date` is the local day being summarised. The totals are optional: when a publisher
    supplies them (the seed's `send_sns_notification` shape) they are rendered as given,
    otherwise the notifier aggregates the user's recorded activity for that day.
    """

    date: Day
    timezone: TimeZoneName = "UTC"
    resend: bool = False
    total_posts: Count | None = None
    successful_posts: Count | None = None
    failed_posts: Count | None = None
    total_engagement: Count | None = None
    platforms: dict[Platform, PlatformStats] | None = Field(default=None, max_length=MAX_LIST_ITEMS)

    @property
    def has_totals(self) -> bool:
        """True when the publisher supplied the report's numbers."""
        return self.total_posts is not None


class TelegramLinkData(_Data):
    """`data` of `telegram.linked` / `telegram.unlinked`."""

    chat_type: str | None = None


class TelegramBlockedData(_Data):
    """`data` of `telegram.blocked`: Telegram refused the chat for good."""

    reason: str
    error_code: int


SUPERGROUP_IDS = (-1_999_999_999_999, -1_000_000_000_001)
"""The range of supergroup (and channel) chat ids: `-100` followed by the group's own id."""


def is_supergroup_id(chat_id: int) -> bool:
    """True for a chat id a group can migrate to (a supergroup's: `-100...`)."""
    return SUPERGROUP_IDS[0] <= chat_id <= SUPERGROUP_IDS[1]


class TelegramChatMigratedData(_Data):
    """`data` of `telegram.chat_migrated`: a group became a supergroup with a new id."""

    new_chat_id: int = Field(
        ge=SUPERGROUP_IDS[0],
        le=SUPERGROUP_IDS[1],
        description="A supergroup's id: -100 followed by its own id",
    )


MAX_THREAD_ID = 2**63 - 1
"""The largest forum topic id (`message_thread_id`) a link stores (BIGINT); topics start at 1."""


class TelegramTopicClosedData(_Data):
    """`data` of `telegram.topic_closed`: the link's forum topic was closed or deleted (the
    notifier sent to the group's General topic instead)."""

    message_thread_id: int = Field(ge=1, le=MAX_THREAD_ID, description="The topic refused")
    reason: str
    error_code: int


class Shown(StrEnum):
    """What a linked user sees of an event of a type."""

    MESSAGE = "message"
    """A message of its own, rendered from the type's template (`services/notifier/render.py`)."""
    EDIT = "edit"
    """New numbers in a message sent earlier (the notifier edits it)."""
    NOTHING = "nothing"
    """Nothing: an event between services (the notifier's queue is not bound to it)."""


@dataclass(frozen=True)
class TypeSpec:
    """One event type's declaration: what every service, list and document derives from it."""

    model: type[_Data]
    """The model of its `data`."""
    published_by: str
    """Who publishes it (the AsyncAPI document's words)."""
    sample: Callable[[date], dict[str, Any]]
    """A valid `data` on a given day, as the specification's examples: what `sns-telegram publish`
    sends without --data, and the AsyncAPI document's example."""
    shown: Shown = Shown.NOTHING
    internal: bool = False
    """Published only by our services, signed, on `INTERNAL_EXCHANGE` (never on `EXCHANGE`)."""
    activity: bool = False
    """Recorded in `activity` (the daily report, the linker's Retry, edits of a post's message)."""
    mutable: bool = False
    """Users may mute it (/mute, the /settings buttons, the preferences API)."""
    names: Mapping[str, str] = field(default_factory=dict)
    """Its name as users read it, by language (`ko`, `en`): in /settings, /mute and the answers
    to buttons. Every type a user may mute or sees a message of has one in each language."""


_PLATFORM = "the SNS platform's services (`shared.publisher.EventPublisher`)"

TYPES: dict[EventType, TypeSpec] = {
    EventType.POST_SUCCESS: TypeSpec(
        PostSuccessData,
        published_by=_PLATFORM,
        sample=lambda _: {
            "platform": "instagram",
            "content": "Post content here...",
            "likes": 1234,
            "comments": 56,
            "post_url": "https://instagram.com/p/sample",
        },
        shown=Shown.MESSAGE,
        activity=True,
        mutable=True,
        names={"ko": "게시 완료", "en": "Post published"},
    ),
    EventType.POST_FAILURE: TypeSpec(
        PostFailureData,
        published_by=_PLATFORM,
        sample=lambda _: {"platform": "instagram", "error": "Connection timeout"},
        shown=Shown.MESSAGE,
        activity=True,
        mutable=True,
        names={"ko": "게시 실패", "en": "Post failed"},
    ),
    EventType.AUTOMATION_EXECUTED: TypeSpec(
        AutomationExecutedData,
        published_by=_PLATFORM,
        sample=lambda _: {
            "automation_name": "Daily Instagram Post",
            "platforms": ["instagram", "twitter"],
            "execution_time": "2026-02-26 10:30:00 UTC",
        },
        shown=Shown.MESSAGE,
        activity=True,
        mutable=True,
        names={"ko": "자동화 실행", "en": "Automation run"},
    ),
    EventType.DAILY_SUMMARY: TypeSpec(
        DailySummaryData,
        published_by="the scheduler, once per linked user per local day",
        sample=lambda today: {
            "date": today.isoformat(),
            "timezone": "UTC",
            "total_posts": 5,
            "successful_posts": 5,
            "failed_posts": 0,
            "total_engagement": 2345,
            "platforms": {
                "instagram": {"posts": 3, "engagement": 1234},
                "twitter": {"posts": 2, "engagement": 1111},
            },
        },
        shown=Shown.MESSAGE,
        mutable=True,
        names={"ko": "일일 리포트", "en": "Daily report"},
    ),
    EventType.POST_METRICS_UPDATED: TypeSpec(
        PostMetricsUpdatedData,
        published_by="the SNS platform's services, when a post's counts change",
        sample=lambda _: {
            "post_id": "sample-post-1",
            "platform": "instagram",
            "likes": 1500,
            "comments": 80,
        },
        # An edit of a message the user already got, not a notification of its own: not mutable.
        shown=Shown.EDIT,
    ),
    EventType.POST_RETRY_REQUESTED: TypeSpec(
        PostRetryRequestedData,
        published_by=(
            "the linker, when a user presses Retry on a failure message (for the platform's "
            "publisher)"
        ),
        sample=lambda _: {
            "original_event_id": "7b0c2f0e-2c7e-4a53-9a55-3f1d6c0f9a10",
            "platform": "instagram",
            "error": "Connection timeout",
            "post_id": "sample-post-1",
        },
    ),
    EventType.TELEGRAM_LINKED: TypeSpec(
        TelegramLinkData,
        published_by="the linker, when a chat is linked",
        sample=lambda _: {"chat_type": "private"},
    ),
    EventType.TELEGRAM_UNLINKED: TypeSpec(
        TelegramLinkData,
        published_by="the linker, when a chat is unlinked",
        sample=lambda _: {"chat_type": "private"},
    ),
    EventType.TELEGRAM_BLOCKED: TypeSpec(
        TelegramBlockedData,
        published_by="the notifier, when Telegram refuses a chat for good",
        sample=lambda _: {"reason": "Forbidden: bot was blocked by the user", "error_code": 403},
        internal=True,
    ),
    EventType.TELEGRAM_CHAT_MIGRATED: TypeSpec(
        TelegramChatMigratedData,
        published_by="the notifier, when a group became a supergroup",
        sample=lambda _: {"new_chat_id": -1001234567890},
        internal=True,
    ),
    EventType.TELEGRAM_TOPIC_CLOSED: TypeSpec(
        TelegramTopicClosedData,
        published_by="the notifier, when the forum topic of a link was closed or deleted",
        sample=lambda _: {
            "message_thread_id": 42,
            "reason": "Bad Request: message thread not found",
            "error_code": 400,
        },
        internal=True,
    ),
}
"""Every event type's declaration, in the order lists and documents show them. Adding a type is
an `EventType` member, its data model and its entry here; then its template and golden texts in
the notifier when users see it (docs/architecture.md, "Where to make a change")."""


def _types(where: Callable[[TypeSpec], bool]) -> tuple[EventType, ...]:
    return tuple(event_type for event_type, spec in TYPES.items() if where(spec))


NOTIFICATION_TYPES = _types(lambda spec: spec.shown is not Shown.NOTHING)
"""The types the notifier queue is bound to."""
MESSAGE_TYPES = _types(lambda spec: spec.shown is Shown.MESSAGE)
"""The types the notifier sends a message of: each has a template."""
INTERNAL_TYPES = _types(lambda spec: spec.internal)
"""What the notifier tells the linker: only on `INTERNAL_EXCHANGE`, signed, never from outside."""
ACTIVITY_TYPES = _types(lambda spec: spec.activity)
"""The platform's own events, recorded for the daily summary."""
MUTABLE_TYPES = _types(lambda spec: spec.mutable)
"""The types a user can mute, in display order."""
DATA_MODELS: dict[EventType, type[_Data]] = {t: spec.model for t, spec in TYPES.items()}


def exchange_of(routing_key: str) -> str:
    """The exchange an event of this type (routing key) travels on."""
    internal = routing_key in {t.value for t in INTERNAL_TYPES}
    return INTERNAL_EXCHANGE if internal else EXCHANGE


def sample_data(event_type: EventType, today: date) -> dict[str, Any]:
    """A valid `data` payload for `event_type`; `today` is the daily summary's day."""
    return TYPES[event_type].sample(today)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a time zone (e.g. 2026-02-26T10:30:00Z)")
    if not FIRST_DAY.year <= value.year <= LAST_DAY.year:  # converting year 1 or 9999 overflows
        raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
    return value.astimezone(UTC)


class Event(BaseModel):
    """The envelope of every message on `sns.events` (docs/architecture.md, "The wire contract")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID
    type: EventType
    user_id: Annotated[Identifier, UserIdAsText] = Field(max_length=128)
    occurred_at: Annotated[
        datetime,
        Field(description=f"ISO 8601 with a time zone, from {FIRST_DAY} to {LAST_DAY}"),
        AfterValidator(_utc),
    ]
    data: dict[str, Any]

    def typed_data(self) -> Any:
        """The `data` validated against the model of this event's type."""
        return DATA_MODELS[self.type].model_validate(self.data)

    def to_json(self) -> bytes:
        """The exact bytes that go on the wire."""
        return self.model_dump_json().encode()


class InvalidEvent(ValueError):
    """A message that does not follow the contract; `str()` names every problem."""


def _describe(error: ValidationError, prefix: str = "") -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{prefix}{location}: {item['msg']}")
    return "; ".join(parts)


def parse_event(body: bytes | str) -> tuple[Event, Any]:
    """Parse and validate one message body: the envelope and its typed `data`.

    Raises `InvalidEvent` with a message naming each offending field.
    """
    if len(body) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"body is {len(body)} bytes, larger than {MAX_EVENT_BYTES}")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidEvent("body is not valid JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise InvalidEvent("body must be a JSON object")
    try:
        event = Event.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc)) from None
    try:
        data = event.typed_data()
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc, prefix="data.")) from None
    return event, data


def new_event(
    type: EventType | str,
    user_id: str | int,
    data: BaseModel | dict[str, Any],
    *,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Build a valid event (its `data` is checked against the type's model)."""
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else dict(data)
    event = Event(
        event_id=event_id or uuid.uuid4(),
        type=EventType(type),
        user_id=str(user_id),
        occurred_at=occurred_at or datetime.now(UTC),
        data=payload,
    )
    try:
        event.typed_data()
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc, prefix="data.")) from None
    return event


def daily_summary_event_id(user_id: str, day: date) -> uuid.UUID:
    """The deterministic id of the scheduled summary trigger for (user, day)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"sns-telegram:daily_summary:{user_id}:{day}")


DeadLetterReason = Literal["invalid", "undeliverable", "retries_exhausted", "processing_error"]
