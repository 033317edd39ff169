"""The delivery log, read: what became of each notification, for the user's API (the linker's
`GET /api/telegram/notifications`), support's `sns-telegram trace` and the admin endpoint.

Read-only over the notifier's tables (`deliveries`, `activity`, `processed_events`,
`delivery_attempts`) and the linker's `button_presses`, so that no service imports another: the
notifier writes, this module reads (`shared/models.py` is the schema both agree on).

A page is keyset-paginated on the delivery's id, newest first: the cursor is the last id seen,
so rows inserted while a client pages (they get higher ids) never shift or repeat a page.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from shared.models import Activity, ButtonPress, Delivery, DeliveryAttempt, ProcessedEvent

PREVIEW_CHARS = 100
"""Longest preview of a message's text the log shows."""
MAX_PAGE = 100
"""Most items per page."""
_CURSOR_PREFIX = "d1:"
_TAG = re.compile(r"<[^>]*>?")
_SPACE = re.compile(r"\s+")


class LogStatus(StrEnum):
    """A notification's state as the log shows it (`deliveries.status`, except that a failed
    delivery whose message went to the dead-letter queue is `dead_lettered`)."""

    SENDING = "sending"
    """Being sent right now."""
    HELD = "held"
    """Waiting for the end of the user's quiet hours (`held_until`)."""
    SENT = "sent"
    EDITED = "edited"
    """An earlier message was updated with new counts."""
    SKIPPED = "skipped"
    """Nothing sent, and `reason` says why (not linked, notifications off, type muted, ...)."""
    UNDELIVERABLE = "undeliverable"
    """Telegram refused the chat for good (blocked, chat not found)."""
    UNCERTAIN = "uncertain"
    """Sent, but Telegram's answer never came: it may have arrived; never resent."""
    FAILED = "failed"
    """Given up without a dead letter (a held message whose release failed)."""
    DEAD_LETTERED = "dead_lettered"
    """Given up; its event is in the dead-letter queue (`dead_letter` and `reason` say why)."""


class InvalidCursor(ValueError):
    """A cursor this module did not make."""


def encode_cursor(delivery_id: int) -> str:
    """The opaque cursor of the page after the item with this delivery id."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{delivery_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The delivery id a cursor continues after; `InvalidCursor` if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (UnicodeError, ValueError, binascii.Error):
        raise InvalidCursor("the cursor is not one this API returned") from None
    number = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not number.isdigit() or len(number) > 19:
        raise InvalidCursor("the cursor is not one this API returned")
    value = int(number)
    if not 0 < value < 2**63 or encode_cursor(value) != cursor:  # only the exact text we made
        raise InvalidCursor("the cursor is not one this API returned")
    return value


def preview(stored: str | None) -> str | None:
    """A message's stored start (HTML) as plain text, at most `PREVIEW_CHARS` characters."""
    if not stored:
        return None
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", stored))).strip()
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 1].rstrip() + "…"
    return text or None


@dataclass(frozen=True)
class LogItem:
    """One notification as the log shows it."""

    event_id: uuid.UUID
    type: str
    occurred_at: datetime | None
    """When the event happened (its `occurred_at`)."""
    received_at: datetime
    """When the notifier first recorded it."""
    status: LogStatus
    reason: str | None
    """Why it was skipped, failed or dead-lettered."""
    held_until: datetime | None
    telegram_message_id: int | None
    preview: str | None
    dead_letter: str | None
    """The dead-letter reason (`invalid`, `undeliverable`, `retries_exhausted`,
    `processing_error`)."""
    sent_at: datetime | None
    updated_at: datetime
    attempts: int
    delivery_id: int

    def as_json(self) -> dict[str, Any]:
        """The item as the APIs answer it (times in ISO 8601)."""
        return _jsonable(asdict(self))


def _status(row: Any) -> LogStatus:
    if row.status == "failed" and row.dead_letter:
        return LogStatus.DEAD_LETTERED
    try:
        return LogStatus(row.status)
    except ValueError:
        return LogStatus.FAILED


def _item(row: Any) -> LogItem:
    """A `deliveries` row as the log shows it (fields in `LogItem`'s order)."""
    status = _status(row)
    why = row.reason if status is LogStatus.SKIPPED and row.reason else row.error
    until = row.release_at if status is LogStatus.HELD else None
    return LogItem(
        row.event_id, row.event_type, row.occurred_at, row.created_at, status, why, until,
        row.telegram_message_id, preview(row.preview), row.dead_letter, row.sent_at,
        row.updated_at, row.attempts, row.id,
    )  # fmt: skip


def _status_filter(statuses: set[LogStatus]) -> ColumnElement[bool]:
    status, dead = Delivery.__table__.c.status, Delivery.__table__.c.dead_letter  # type: ignore[attr-defined]
    plain = [s.value for s in statuses if s not in (LogStatus.FAILED, LogStatus.DEAD_LETTERED)]
    terms: list[ColumnElement[bool]] = [status.in_(plain)] if plain else []
    if LogStatus.FAILED in statuses:
        terms.append(and_(status == "failed", dead.is_(None)))
    if LogStatus.DEAD_LETTERED in statuses:
        terms.append(and_(status == "failed", dead.is_not(None)))
    return or_(*terms)


def _storable(text: str) -> bool:
    """Whether PostgreSQL can take `text` as a parameter (UTF-8, no NUL)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return "\x00" not in text


@dataclass(frozen=True)
class Page:
    """One page of a user's log and the cursor of the next (None: this is the last)."""

    items: list[LogItem]
    next_cursor: str | None


async def user_log(
    engine: AsyncEngine,
    user_id: str,
    *,
    limit: int = 20,
    after: int | None = None,
    types: set[str] | None = None,
    statuses: set[LogStatus] | None = None,
) -> Page:
    """The user's notifications, newest first, after the delivery id `after` (a decoded cursor),
    only of `types` and `statuses` when given."""
    limit = max(1, min(limit, MAX_PAGE))
    if not _storable(user_id):  # no such user can have been stored: PostgreSQL refuses it
        return Page([], None)
    table = Delivery.__table__  # type: ignore[attr-defined]
    query = select(table).where(table.c.user_id == user_id)
    if after is not None:
        query = query.where(table.c.id < after)
    if types:
        query = query.where(table.c.event_type.in_(sorted(types)))
    if statuses:
        query = query.where(_status_filter(statuses))
    query = query.order_by(table.c.id.desc()).limit(limit + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    items = [_item(row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(items[-1].delivery_id) if more and items else None)


@dataclass(frozen=True)
class EventTrace:
    """Everything recorded about one event, in the order it happened."""

    event_id: uuid.UUID
    deliveries: list[LogItem] = field(default_factory=list)
    activity: dict[str, Any] | None = None
    """What the event said (platform events only)."""
    processed_at: datetime | None = None
    """When the notifier finished with it (its inbox row)."""
    handed_over_at: datetime | None = None
    """When its message was last written to Telegram's connection (the hand-over mark)."""
    refused_attempts: list[dict[str, Any]] = field(default_factory=list)
    """Each attempt Telegram refused or left unanswered, with its answer."""
    presses: list[dict[str, Any]] = field(default_factory=list)
    """Presses of its buttons (Retry, Mute) and what came of them."""

    @property
    def found(self) -> bool:
        """Whether anything at all was recorded about the event."""
        return bool(self.deliveries or self.activity or self.processed_at)

    def as_json(self) -> dict[str, Any]:
        """The trace as the admin endpoint answers it."""
        return _jsonable(
            {
                "event_id": self.event_id,
                "found": self.found,
                "received_at": min((d.received_at for d in self.deliveries), default=None),
                "activity": self.activity,
                "deliveries": [asdict(d) for d in self.deliveries],
                "handed_over_at": self.handed_over_at,
                "refused_attempts": self.refused_attempts,
                "processed_at": self.processed_at,
                "presses": self.presses,
            }
        )


async def trace(engine: AsyncEngine, event_id: uuid.UUID) -> EventTrace:
    """Everything the database recorded about one event (a few indexed reads)."""
    deliveries = Delivery.__table__  # type: ignore[attr-defined]
    attempts = DeliveryAttempt.__table__  # type: ignore[attr-defined]
    presses = ButtonPress.__table__  # type: ignore[attr-defined]
    activity = Activity.__table__  # type: ignore[attr-defined]
    inbox = ProcessedEvent.__table__  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(deliveries)
                .where(deliveries.c.event_id == event_id)
                .order_by(deliveries.c.id)
            )
        ).all()
        done = (
            await conn.execute(select(inbox.c.received_at).where(inbox.c.event_id == event_id))
        ).scalar()
        what = (
            (await conn.execute(select(activity).where(activity.c.event_id == event_id)))
            .mappings()
            .first()
        )
        tried, pressed = [
            (await conn.execute(select(table).where(table.c.event_id == event_id).order_by(*by)))
            .mappings()
            .all()
            for table, by in (
                (attempts, (attempts.c.at, attempts.c.id)),
                (presses, (presses.c.pressed_at, presses.c.id)),
            )
        ]
    return EventTrace(
        event_id=event_id,
        deliveries=[_item(row) for row in rows],
        activity=_activity(dict(what)) if what else None,
        processed_at=done,
        handed_over_at=max((r.handed_over_at for r in rows if r.handed_over_at), default=None),
        refused_attempts=[_without(dict(a), "id", "event_id") for a in tried],
        presses=[_without(dict(p), "id", "event_id") for p in pressed],
    )


def _activity(row: dict[str, Any]) -> dict[str, Any]:
    details = row.get("details") or {}
    kept = {k: v for k, v in details.items() if k != "chat"}  # the chat's digest says nothing
    return {
        "type": row["type"],
        "occurred_at": row["occurred_at"],
        "platform": row["platform"],
        "post_id": row["post_id"],
        "likes": row["likes"],
        "comments": row["comments"],
        "details": kept,
    }


def _without(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | StrEnum):
        return str(value)
    return value
