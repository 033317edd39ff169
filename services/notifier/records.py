"""The notifier's records: a delivery's states, the rows it reads and writes, what planning decides
for each event (a plan) and how a send ends (a verdict). Data only, no I/O: planning, delivery,
release and the store all speak in these."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo

from services.notifier.keyboards import Keyboard
from services.notifier.telegram import LOUD, Options
from shared.contract import DeadLetterReason


class DeliveryStatus(StrEnum):
    """A delivery's state, exactly as `deliveries.status` stores it."""

    SENDING = "sending"
    """Intent recorded; the message is being sent (or was, by a consumer that stopped)."""
    HELD = "held"
    """Waiting in the database for the user's quiet hours to end."""
    SENT = "sent"
    SKIPPED = "skipped"
    """Nothing to send: not linked, disabled, muted, or nothing to edit."""
    EDITED = "edited"
    """A post's message edited in place with its new counts."""
    UNDELIVERABLE = "undeliverable"
    """Telegram refused the chat or the message for good."""
    UNCERTAIN = "uncertain"
    """Written to Telegram, no answer: maybe delivered, so never resent."""
    FAILED = "failed"
    """Given up (dead-lettered, or a held message whose release failed); tried again if it
    comes back."""


FINAL_STATUSES = (
    DeliveryStatus.SENT,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.UNCERTAIN,
    DeliveryStatus.UNDELIVERABLE,
    DeliveryStatus.EDITED,
)
"""A delivery in one of these states is never attempted again for the same dedupe key."""

SETTLED_IN_PLAN = (DeliveryStatus.SKIPPED, DeliveryStatus.HELD, DeliveryStatus.EDITED)
"""Delivery states decided inside the batch transaction: nothing is sent for them now."""

OutcomeStatus = DeliveryStatus | Literal["duplicate", "error"]
"""What became of an event: its delivery's state, or a copy of one already handled
(`duplicate`), or an event that could not be processed (`error`, dead-lettered)."""

ERROR_CHARS = 2000
"""Longest error text kept on a delivery."""
PREVIEW_CHARS = 300
"""How much of a message's rendered text (HTML) a delivery keeps for the delivery log."""


def storable(text: str) -> str:
    """`text` as PostgreSQL can store it: without NUL characters, lone surrogates replaced."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def problem(exc: BaseException) -> str:
    """An exception as a delivery's error and a dead letter's reason: its type and message,
    storable and at most `ERROR_CHARS` long."""
    return storable(f"{type(exc).__name__}: {exc}")[:ERROR_CHARS]


# -- outcomes, plans and verdicts ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one event; `dead_letter` set means: put the message in the DLQ."""

    status: OutcomeStatus
    reason: str | None = None
    dead_letter: DeadLetterReason | None = None
    telegram_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class SendPlan:
    """Send a new message."""

    chat_id: int
    text: str
    buttons: Keyboard | None
    language: str
    options: Options = LOUD


@dataclass(frozen=True, slots=True)
class EditPlan:
    """Edit a sent message in place (a post's new counts)."""

    chat_id: int
    message_id: int
    text: str
    buttons: Keyboard
    options: Options = LOUD
    """Only what an edit takes: the link preview."""


@dataclass(frozen=True, slots=True)
class Settled:
    """Nothing is sent now, and why (skipped, held for quiet hours, a held message updated)."""

    reason: str


Plan = SendPlan | EditPlan | Settled
"""What one event (one dedupe key) becomes."""


@dataclass(frozen=True, slots=True)
class HeldEdit:
    """New text for a message still held for quiet hours."""

    delivery_id: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a send or an edit ended: the delivery's status, Telegram's message id, the error,
    and the dead-letter reason when its RabbitMQ message goes to the DLQ."""

    status: DeliveryStatus
    message_id: int | None = None
    error: str | None = None
    dead_letter: DeadLetterReason | None = None
    kept: dict[str, Any] | None = None
    """What the delivery row's payload gains (`{"photo": true}`: the message is a photo)."""


# -- rows: what the store reads and writes ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """What the notifier needs of a user's link."""

    user_id: str
    chat_id: str | None
    enabled: bool
    muted_types: tuple[str, ...]
    language: str
    timezone: str = "UTC"
    quiet_start: time | None = None
    quiet_end: time | None = None
    silent_types: tuple[str, ...] = ()
    quiet_mode: str = "hold"
    """`hold`: quiet hours keep messages until they end; `silent`: send them now, silently."""
    link_previews: bool = True
    message_thread_id: int | None = None
    """The forum topic the link's messages go to; None: the chat itself (General)."""
    post_images: bool = True
    """Whether a post notification carrying an `image_url` goes as a photo with a caption."""


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One platform event as recorded for the daily summary."""

    event_id: uuid.UUID
    user_id: str
    type: str
    occurred_at: datetime
    platform: str | None
    likes: int
    comments: int
    details: dict[str, object]
    post_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryIntent:
    """A delivery row to create (or resume) before sending."""

    dedupe_key: str
    event_id: uuid.UUID
    event_type: str
    user_id: str
    chat_ref: str | None
    status: DeliveryStatus
    occurred_at: datetime | None = None
    preview: str | None = None
    """The start of the message's text (`PREVIEW_CHARS`), for the delivery log."""
    reason: str | None = None
    """Why nothing is sent (a skipped delivery)."""


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """The delivery row as the database holds it after `begin_deliveries`."""

    id: int
    dedupe_key: str
    status: DeliveryStatus
    attempts: int
    handed_at: datetime | None = None
    """Set when a request for it was written to Telegram and no result was recorded since."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one delivery, written after the send."""

    delivery_id: int
    event_id: uuid.UUID
    event_type: str
    user_id: str
    status: DeliveryStatus
    telegram_message_id: int | None
    error: str | None
    attempts: int
    final: bool
    dead_letter: DeadLetterReason | None = None
    """Set when the event's RabbitMQ message goes to the DLQ (recorded with the result)."""
    kept: dict[str, Any] | None = None
    """Merged into the row's payload (see `Verdict.kept`)."""


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """An event dead-lettered before it had a delivery row (unreadable, or failed in planning):
    what the delivery log keeps of it."""

    dedupe_key: str
    event_id: uuid.UUID
    event_type: str
    user_id: str
    occurred_at: datetime | None
    reason: DeadLetterReason
    error: str


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """One attempt Telegram refused or did not answer (the delivery log's attempts)."""

    delivery_id: int
    event_id: uuid.UUID
    attempt: int
    at: datetime
    failure: str
    error_code: int | None
    description: str
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class SummaryWindow:
    """The UTC interval of one user's local day."""

    key: str
    user_id: str
    day: date
    timezone: str

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) of the local day in UTC (handles DST days of 23 or 25 hours)."""
        try:
            zone = ZoneInfo(self.timezone)
        except (KeyError, ValueError):
            zone = ZoneInfo("UTC")
        start = datetime.combine(self.day, time(0), zone).astimezone(UTC)
        end = datetime.combine(self.day + timedelta(days=1), time(0), zone).astimezone(UTC)
        return start, end


@dataclass(frozen=True, slots=True)
class Hold:
    """A delivery to keep until the user's quiet hours end, with what it will send."""

    delivery_id: int
    release_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class HeldDelivery:
    """A held delivery whose time has come (locked by `due_held` until the transaction ends)."""

    id: int
    event_id: uuid.UUID
    event_type: str
    user_id: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class MetricsUpdate:
    """New counts for one post of one user (`key`: the metrics event's dedupe key)."""

    key: str
    user_id: str
    post_id: str
    likes: int
    comments: int
    at: datetime


@dataclass(frozen=True, slots=True)
class PostMessage:
    """A post's success notification as a metrics update finds it."""

    event_id: uuid.UUID
    occurred_at: datetime
    details: dict[str, Any]
    applied: bool
    """False when a newer update was applied before (this one is stale)."""
    delivery_id: int | None
    status: DeliveryStatus | None
    message_id: int | None
    payload: dict[str, Any] | None
