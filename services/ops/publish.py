"""`sns-telegram publish`: build a contract event by hand and publish it with confirms."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from pydantic import ValidationError

from services.common.publishing import BrokerUnreachable, connected
from services.ops.amqp import OpsError
from shared.contract import (
    INTERNAL_EXCHANGE,
    INTERNAL_TYPES,
    Event,
    EventType,
    InvalidEvent,
    new_event,
    sample_data,
)
from shared.publisher import PublishError


class InvalidInput(ValueError):
    """The command line does not describe a valid event; `str()` names each field."""


def parse_data(data: str | None, data_file: str | None) -> dict[str, Any] | None:
    """The `data` object from --data or --data-file (None when neither was given)."""
    if data is not None and data_file is not None:
        raise InvalidInput("give --data or --data-file, not both")
    if data_file is not None:
        try:
            data = Path(data_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"--data-file: cannot read {data_file}: {exc.strerror}") from None
    if data is None:
        return None
    source = "--data-file" if data_file is not None else "--data"
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidInput(f"{source}: must be a JSON object, got {type(parsed).__name__}")
    return parsed


def build_event(
    event_type: str,
    user_id: str,
    data: dict[str, Any] | None,
    *,
    event_id: str | None = None,
    occurred_at: str | None = None,
    now: datetime | None = None,
) -> Event:
    """A validated event; without `data`, the type's sample (`TYPES` in `shared.contract`)."""
    now = now or datetime.now(UTC)
    try:
        kind = EventType(event_type)
    except ValueError:
        choices = ", ".join(t.value for t in EventType)
        raise InvalidInput(f"type: {event_type!r} is not one of {choices}") from None
    if kind in INTERNAL_TYPES:
        raise InvalidInput(
            f"type: {kind.value} is an internal event: only the notifier publishes it (signed, on "
            f"{INTERNAL_EXCHANGE}); the linker ignores it from anywhere else"
        )
    parsed_id = None
    if event_id is not None:
        try:
            parsed_id = uuid.UUID(event_id)
        except ValueError:
            raise InvalidInput(f"event_id: {event_id!r} is not a UUID") from None
    parsed_at = None
    if occurred_at is not None:
        try:
            parsed_at = datetime.fromisoformat(occurred_at)
        except ValueError:
            raise InvalidInput(
                f"occurred_at: {occurred_at!r} is not an ISO 8601 date-time "
                "(e.g. 2026-02-26T10:30:00Z)"
            ) from None
    payload = sample_data(kind, now.date()) if data is None else data
    try:
        return new_event(kind, user_id, payload, event_id=parsed_id, occurred_at=parsed_at)
    except InvalidEvent as exc:
        raise InvalidInput(str(exc)) from None
    except ValidationError as exc:
        raise InvalidInput(
            "; ".join(
                f"{'.'.join(str(p) for p in item['loc']) or 'event'}: {item['msg']}"
                for item in exc.errors()
            )
        ) from None


async def publish(url: str, event: Event, *, confirm_timeout: float = 10.0) -> None:
    """Publish with confirms and `mandatory` (an event no queue receives is an error)."""
    try:
        async with connected(url, confirm_timeout=confirm_timeout) as publisher:
            await publisher.publish(event)
    except BrokerUnreachable as exc:
        raise OpsError(str(exc)) from None
    except PublishError as exc:
        hint = ""
        if isinstance(exc.__cause__, aio_pika.exceptions.PublishError):  # returned: unroutable
            hint = (
                f" (no queue is bound to {event.type.value!r} on sns.events: "
                "is the consuming service's topology declared?)"
            )
        raise OpsError(f"{exc}{hint}") from None
