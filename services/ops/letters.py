"""The pure core of the dead-letter commands: what a dead letter says, where a replay sends it,
which letters a filter selects. Nothing here talks to the broker or prints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from shared.contract import (
    DEAD_LETTERED_AT_HEADER,
    DEATH_HEADER,
    DLQ_ERROR_HEADER,
    DLQ_REASON_HEADER,
    LINKER_DLQ,
    NOTIFIER_DLQ,
    ORIGINAL_ROUTING_KEY_HEADER,
    InvalidEvent,
    parse_event,
)

DEAD_LETTER_QUEUES = (NOTIFIER_DLQ, LINKER_DLQ)
"""The queues these commands may work on (never a live queue: replaying one would duplicate)."""

DELIVERY_COUNT_HEADER = "x-delivery-count"
"""RabbitMQ's count of a quorum queue message's deliveries (a replay must not carry it over)."""

_DROPPED_ON_REPLAY = frozenset(
    {DEATH_HEADER, ORIGINAL_ROUTING_KEY_HEADER, DEAD_LETTERED_AT_HEADER, DELIVERY_COUNT_HEADER}
)
_DROPPED_PREFIXES_ON_REPLAY = ("x-dlq-", "x-first-death-", "x-last-death-")
_KEPT_PROPERTIES = (
    "content_type",
    "content_encoding",
    "message_id",
    "type",
    "timestamp",
    "correlation_id",
    "app_id",
    "priority",
)


def replay_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers a replayed message carries: the original ones, without dead-letter marks."""
    return {
        key: value
        for key, value in headers.items()
        if key not in _DROPPED_ON_REPLAY and not key.startswith(_DROPPED_PREFIXES_ON_REPLAY)
    }


def _deaths(headers: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    deaths = headers.get(DEATH_HEADER)
    if not isinstance(deaths, list):
        return []
    return [d for d in deaths if isinstance(d, Mapping)]


def original_routing_key(
    headers: Mapping[str, Any], dlq_routing_key: str | None, body_type: str | None
) -> str | None:
    """Where a replay sends the message on `sns.events`, or None if that cannot be known.

    In order: the notifier's `x-original-routing-key`; the routing key RabbitMQ recorded in
    `x-death` (the oldest death: the key it was first published with); the key it reached the
    DLQ with when that is an event type (the notifier's DLQ is bound per type); the body's type.
    """
    original = headers.get(ORIGINAL_ROUTING_KEY_HEADER)
    if isinstance(original, str) and original:
        return original
    for death in reversed(_deaths(headers)):
        keys = death.get("routing-keys")
        if isinstance(keys, list) and keys and isinstance(keys[0], str):
            return keys[0]
    if dlq_routing_key and dlq_routing_key not in DEAD_LETTER_QUEUES:
        return dlq_routing_key
    return body_type or None


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


@dataclass(frozen=True)
class DeadLetter:
    """One message of a DLQ as read (`position` 1 is the head of the queue)."""

    position: int
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)
    dlq_routing_key: str | None = None
    delivery_tag: int | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_message(cls, position: int, message: AbstractIncomingMessage) -> DeadLetter:
        """The view of a message taken from the queue."""
        properties = {name: getattr(message, name, None) for name in _KEPT_PROPERTIES}
        return cls(
            position=position,
            body=message.body,
            headers=dict(message.headers or {}),
            properties={k: v for k, v in properties.items() if v is not None},
            dlq_routing_key=message.routing_key,
            delivery_tag=message.delivery_tag,
        )

    @cached_property
    def _json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    @cached_property
    def problem(self) -> str | None:
        """Why the body is not a valid contract event (None when it is)."""
        try:
            parse_event(self.body)
        except InvalidEvent as exc:
            return str(exc)
        return None

    @property
    def valid(self) -> bool:
        """True when the body is a valid contract event."""
        return self.problem is None

    def _body_field(self, name: str) -> str | None:
        value = self._json.get(name) if isinstance(self._json, dict) else None
        return str(value) if value is not None else None

    @property
    def event_id(self) -> str | None:
        """The message_id (= event id), else the body's `event_id`."""
        message_id = self.properties.get("message_id")
        return str(message_id) if message_id else self._body_field("event_id")

    @property
    def event_type(self) -> str | None:
        """The body's `type`, else the routing key a replay would use."""
        return self._body_field("type") or self.routing_key

    @property
    def routing_key(self) -> str | None:
        """The routing key a replay publishes with on `sns.events`."""
        return original_routing_key(self.headers, self.dlq_routing_key, self._body_field("type"))

    @property
    def reason(self) -> str:
        """`x-dlq-reason`, or RabbitMQ's dead-letter reason (`delivery_limit`, `rejected`, ...)."""
        reason = self.headers.get(DLQ_REASON_HEADER)
        if isinstance(reason, str) and reason:
            return reason
        first = self.headers.get("x-first-death-reason")
        if isinstance(first, str) and first:
            return first
        deaths = _deaths(self.headers)
        return str(deaths[0].get("reason", "unknown")) if deaths else "unknown"

    @property
    def error(self) -> str:
        """`x-dlq-error`, or a description of RabbitMQ's dead-lettering."""
        error = self.headers.get(DLQ_ERROR_HEADER)
        if isinstance(error, str) and error:
            return error
        deaths = _deaths(self.headers)
        if deaths:
            death = deaths[0]
            return (
                f"dead-lettered by RabbitMQ from {death.get('queue', '?')} "
                f"({death.get('reason', '?')}, {death.get('count', 1)} time(s))"
            )
        return ""

    @property
    def dead_lettered_at(self) -> datetime | None:
        """When it was dead-lettered (`x-dead-lettered-at`, or the latest `x-death` time)."""
        stamped = _as_datetime(self.headers.get(DEAD_LETTERED_AT_HEADER))
        if stamped is not None:
            return stamped
        deaths = _deaths(self.headers)
        return _as_datetime(deaths[0].get("time")) if deaths else None

    @property
    def deliveries(self) -> int | None:
        """Earlier deliveries from the DLQ itself (by anything but `dlq`, whose looks put the
        message back as a copy and so never count)."""
        count = self.headers.get(DELIVERY_COUNT_HEADER)
        return count if isinstance(count, int) else None

    def matches_id(self, key: str) -> bool:
        """True when `key` is this message's event id or message_id."""
        return key in {self.event_id, self.properties.get("message_id")}

    def kept_message(self) -> aio_pika.Message:
        """The same dead letter, to put back at the tail of its DLQ: body, properties and every
        header but the broker's delivery count (a look is not a delivery)."""
        headers = {k: v for k, v in self.headers.items() if k != DELIVERY_COUNT_HEADER}
        return self._message(headers)

    def replay_message(self) -> aio_pika.Message:
        """The message a replay publishes: same body and properties, persistent, headers cleaned."""
        return self._message(replay_headers(self.headers))

    def _message(self, headers: dict[str, Any]) -> aio_pika.Message:
        props = self.properties
        return aio_pika.Message(
            body=self.body,
            headers=headers,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type=props.get("content_type"),
            content_encoding=props.get("content_encoding"),
            message_id=props.get("message_id"),
            type=props.get("type"),
            timestamp=props.get("timestamp"),
            correlation_id=props.get("correlation_id"),
            app_id=props.get("app_id"),
            priority=props.get("priority"),
        )


@dataclass(frozen=True)
class Selection:
    """Which dead letters a replay or purge applies to (everything when empty)."""

    ids: frozenset[str] = frozenset()
    reason: str | None = None
    only_valid: bool = False

    def matches(self, letter: DeadLetter) -> bool:
        """True when the letter passes every given filter."""
        if self.ids and not any(letter.matches_id(key) for key in self.ids):
            return False
        if self.reason is not None and letter.reason != self.reason:
            return False
        return not (self.only_valid and not letter.valid)

    def describe(self) -> str:
        """The filters in words, for prompts and reports."""
        parts = []
        if self.ids:
            parts.append(f"id in {', '.join(sorted(self.ids))}")
        if self.reason is not None:
            parts.append(f"reason={self.reason}")
        if self.only_valid:
            parts.append("valid events only")
        return " and ".join(parts) if parts else "all messages"
