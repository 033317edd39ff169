"""Database tables (SQLModel). Each table has exactly one owning service, named in its docstring;
only the owner writes it. Schema changes go through alembic (`shared/migrations`)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _tz(nullable: bool = True, index: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class TelegramLink(SQLModel, table=True):
    """A platform user's Telegram link and notification settings. Owner: linker.

    `chat_id` is stored encrypted when CHAT_ID_ENCRYPTION_KEY is set; `chat_lookup` is a keyed
    digest of the chat id so a chat can be found without decrypting every row.
    """

    __tablename__ = "telegram_links"

    user_id: str = Field(primary_key=True, max_length=128)
    chat_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    chat_lookup: str | None = Field(default=None, sa_column=Column(String(64), index=True))
    chat_type: str | None = Field(default=None, max_length=32)
    enabled: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    linked_at: datetime | None = Field(default=None, sa_column=_tz())
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )
    timezone: str = Field(default="UTC", max_length=64, sa_column_kwargs={"server_default": "UTC"})
    summary_time: time = Field(default=time(9, 0), sa_column_kwargs={"server_default": "09:00"})
    language: str = Field(default="ko", max_length=8, sa_column_kwargs={"server_default": "ko"})
    muted_types: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'")),
    )
    quiet_start: time | None = None
    """Quiet hours (local time in `timezone`): messages wait until `quiet_end`; both or neither."""
    quiet_end: time | None = None
    silent_types: list[str] = Field(
        default_factory=lambda: ["daily_summary"],
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{daily_summary}'")),
    )
    """Types sent without a sound (`disable_notification`); muted wins over silent."""
    quiet_mode: str = Field(
        default="hold", max_length=8, sa_column_kwargs={"server_default": "hold"}
    )
    """What quiet hours do: `hold` (keep, then fold when they end) or `silent` (send now,
    without a sound)."""
    link_previews: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    """Whether notifications with a post link show a small preview of the post."""
    post_images: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    """Whether a post notification carrying the post's image (`image_url`) is sent as a photo
    with the text as its caption."""
    message_thread_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    """The forum topic notifications go to (`message_thread_id`); None: the chat itself (a
    forum's General topic)."""


class LinkToken(SQLModel, table=True):
    """A one-time deep-link token, stored only as its SHA-256 hash. Owner: linker."""

    __tablename__ = "link_tokens"
    __table_args__ = (
        Index("ix_link_tokens_user_unused", "user_id", postgresql_where=text("used_at IS NULL")),
        Index("ix_link_tokens_expires_at", "expires_at"),  # retention
    )

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    expires_at: datetime = Field(sa_column=_tz(nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=_tz())
    revoked_at: datetime | None = Field(default=None, sa_column=_tz())


class RateLimit(SQLModel, table=True):
    """GCRA state of one limited key (`test_message:<user>`), shared by replicas. Owner: linker."""

    __tablename__ = "rate_limits"
    __table_args__ = (Index("ix_rate_limits_tat", "tat"),)  # retention: a passed TAT is no state

    key: str = Field(primary_key=True, max_length=200)
    tat: datetime = Field(sa_column=_tz(nullable=False))


class ProcessedEvent(SQLModel, table=True):
    """The notifier's inbox: one row per event id it has accepted (idempotency). Owner: notifier."""

    __tablename__ = "processed_events"
    __table_args__ = (Index("ix_processed_events_received_at", "received_at"),)  # retention

    event_id: uuid.UUID = Field(primary_key=True)
    type: str = Field(max_length=64)
    user_id: str = Field(max_length=128)
    received_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))


class Activity(SQLModel, table=True):
    """What each platform event says, for the daily summary. Owner: notifier.

    `details["data"]` is the event's `data` (texts cut at 4,000 characters): the linker's Retry
    republishes it, and a metrics edit re-renders the success message from it.
    `details["chat"]` is a keyed digest of the chat a success message went to (an edit goes only
    there); `details["metrics_at"]` the time of the last applied `post_metrics_updated`, whose
    counts `likes`/`comments` then hold.
    """

    __tablename__ = "activity"
    __table_args__ = (
        Index("ix_activity_user_time", "user_id", "occurred_at"),
        Index("ix_activity_user_post", "user_id", "post_id"),
        Index("ix_activity_recorded_at", "recorded_at"),  # retention
    )

    event_id: uuid.UUID = Field(primary_key=True)
    user_id: str = Field(max_length=128)
    type: str = Field(max_length=64)
    occurred_at: datetime = Field(sa_column=_tz(nullable=False))
    platform: str | None = Field(default=None, max_length=64)
    post_id: str | None = Field(default=None, max_length=200)
    likes: int = 0
    comments: int = 0
    details: dict[str, object] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
    recorded_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )
    """When the notifier wrote the row (server time): retention counts from it, not from the
    publisher's `occurred_at`."""


class Delivery(SQLModel, table=True):
    """One Telegram message the notifier meant to send, and what became of it. Owner: notifier.

    `dedupe_key` makes sending idempotent: the event id, or `daily_summary:<user>:<date>` so a
    summary goes out at most once per user and day (a deliberate resend has its own key).
    Status: `sending` (intent recorded), `held` (quiet hours: waits for `release_at`), `sent`,
    `edited` (a `post_metrics_updated` event: the post's message, `telegram_message_id`, was
    edited, or its held payload rewritten), `skipped` (no link, disabled, muted, nothing to edit),
    `undeliverable` (Telegram refused the chat for good), `uncertain` (the request timed out after
    it was sent; it may have been delivered), `failed` (given up: dead-lettered, `dead_letter`
    says why). The delivery log (`services/common/delivery_log.py`) reads it for the user's API
    and for support's `trace`.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_deliveries_dedupe_key"),
        Index("ix_deliveries_held_release", "release_at", postgresql_where=text("status = 'held'")),
        Index("ix_deliveries_created_at", "created_at"),  # retention
        Index("ix_deliveries_user_log", "user_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    dedupe_key: str = Field(max_length=200)
    event_id: uuid.UUID = Field(index=True)
    event_type: str = Field(max_length=64)
    user_id: str = Field(max_length=128)
    chat_ref: str | None = Field(default=None, max_length=32)
    status: str = Field(max_length=16)
    telegram_message_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    error: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=_tz())
    handed_at: datetime | None = Field(default=None, sa_column=_tz())
    """The request was written to Telegram's connection: a restart must not resend it blindly."""
    release_at: datetime | None = Field(default=None, sa_column=_tz())
    """A `held` delivery (quiet hours) is sent at this instant."""
    payload: dict[str, object] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    """What a held delivery will send: `text` and unsigned `buttons`; `folded` (a count) once it
    went out inside one quiet-hours message with others (that message is never edited)."""
    occurred_at: datetime | None = Field(default=None, sa_column=_tz())
    """When the event happened (its `occurred_at`)."""
    preview: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The start of the message as rendered (HTML, cut): the delivery log shows it as text."""
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """Why nothing was sent (`skipped`: not linked, disabled, muted, ...)."""
    dead_letter: str | None = Field(default=None, max_length=32)
    """Its RabbitMQ message went to the DLQ with this reason (`x-dlq-reason`); `error` says more."""
    handed_over_at: datetime | None = Field(default=None, sa_column=_tz())
    """The last time a request for it was written to Telegram (kept after the answer)."""


class DeliveryAttempt(SQLModel, table=True):
    """One attempt of a delivery that Telegram refused or did not answer. Owner: notifier.

    A successful attempt is the delivery row itself (`sent_at`, `telegram_message_id`)."""

    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    delivery_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    event_id: uuid.UUID = Field(index=True)
    attempt: int
    at: datetime = Field(sa_column=_tz(nullable=False, index=True))  # retention
    failure: str = Field(max_length=32)
    """How the notifier read the answer: retry_after, transient, migrated, chat_gone, ..."""
    error_code: int | None = None
    description: str = Field(sa_column=Column(Text, nullable=False))
    retry_after: float | None = None


class ButtonPress(SQLModel, table=True):
    """A press of a notification's button (Retry, Mute) and what came of it. Owner: linker."""

    __tablename__ = "button_presses"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    event_id: uuid.UUID | None = Field(default=None, index=True)
    """The notification whose button it was (None: its message is not in the delivery log)."""
    user_id: str = Field(max_length=128)
    action: str = Field(max_length=32)
    outcome: str = Field(max_length=32)
    pressed_at: datetime = Field(sa_column=_tz(nullable=False, index=True))  # retention


class SummaryRun(SQLModel, table=True):
    """One daily-summary trigger for one user and local day. Owner: scheduler.

    The unique (user_id, summary_date, kind) row is written before the trigger is published, so
    each scheduled trigger is emitted once however many scheduler replicas run.
    """

    __tablename__ = "summary_runs"
    __table_args__ = (
        UniqueConstraint("user_id", "summary_date", "kind", name="uq_summary_runs_user_date"),
        Index(
            "ix_summary_runs_unpublished", "due_at", postgresql_where=text("published_at IS NULL")
        ),
        Index("ix_summary_runs_due_at", "due_at"),  # retention
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    user_id: str = Field(max_length=128)
    summary_date: date
    kind: str = Field(default="scheduled", max_length=64)
    event_id: uuid.UUID
    due_at: datetime = Field(sa_column=_tz(nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False))
    published_at: datetime | None = Field(default=None, sa_column=_tz())
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    job_run_id: int | None = Field(default=None, sa_column=Column(BigInteger, index=True))
    timezone: str = Field(default="UTC", max_length=64, sa_column_kwargs={"server_default": "UTC"})


class SummarySchedule(SQLModel, table=True):
    """Each active user's next daily-summary trigger: which local day, due when. Owner: scheduler.

    Kept in step with `telegram_links` by the scheduler (it only reads that table).
    """

    __tablename__ = "summary_schedules"

    user_id: str = Field(primary_key=True, max_length=128)
    timezone: str = Field(max_length=64)
    summary_time: time
    summary_date: date
    due_at: datetime = Field(sa_column=_tz(nullable=False, index=True))
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )


class JobRun(SQLModel, table=True):
    """One run of a scheduler job (cron or manual), with its counts. Owner: scheduler.

    `slot`: the schedule slot of a data-retention run; unique per job, so one replica runs it.
    """

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job_id", "slot", name="uq_job_runs_job_slot"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    job_id: str = Field(max_length=64, index=True)
    trigger: str = Field(max_length=16)
    started_at: datetime = Field(default_factory=utcnow, sa_column=_tz(nullable=False, index=True))
    finished_at: datetime | None = Field(default=None, sa_column=_tz())
    emitted: int = 0
    failed: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))
    details: dict[str, object] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
    slot: datetime | None = Field(default=None, sa_column=_tz())
