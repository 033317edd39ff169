"""What the delivery log needs beyond results, recorded on the side: each attempt Telegram
refused (with its answer) and each event dead-lettered before it had a delivery row.

Best effort and off the sending path: a note is queued synchronously, written in batches on its
own task with a deadline, and a note that cannot be written is only logged. Sends never wait for
notes, and a healthy send writes none (its delivery row is its record).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import astuple
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from services.notifier.batching import Batcher
from services.notifier.records import (
    ERROR_CHARS,
    FINAL_STATUSES,
    DeadLetterRecord,
    DeliveryStatus,
    FailedAttempt,
    Outcome,
    storable,
)
from shared.contract import DeadLetterReason, Event

log = logging.getLogger("notifier")

NOTE_TIMEOUT = 5.0
"""Seconds a batch of notes may take before it is given up (and only logged)."""


FAILED = DeliveryStatus.FAILED
# An event dead-lettered before it had a delivery row; a finished delivery keeps its state.
_DEAD_LETTERS = f"""
INSERT INTO deliveries AS d (dedupe_key, event_id, event_type, user_id, status, attempts,
                             created_at, updated_at, occurred_at, error, dead_letter)
SELECT k, e, t, u, '{FAILED}', 0, now(), now(), o, x, r
FROM unnest(%s::text[], %s::uuid[], %s::text[], %s::text[], %s::timestamptz[], %s::text[],
            %s::text[]) AS v(k, e, t, u, o, x, r)
ON CONFLICT (dedupe_key) DO UPDATE SET
    status = '{FAILED}', error = excluded.error, dead_letter = excluded.dead_letter,
    updated_at = now()
WHERE d.status <> ALL(%s)
"""  # noqa: S608 (statuses only)

_ATTEMPTS = """
INSERT INTO delivery_attempts (delivery_id, event_id, attempt, at, failure, error_code,
                               description, retry_after)
SELECT * FROM unnest(%s::bigint[], %s::uuid[], %s::int[], %s::timestamptz[], %s::text[],
                     %s::int[], %s::text[], %s::float8[])
"""


class NoteStore:
    """Where notes go: the notifier's tables `deliveries` and `delivery_attempts`, a statement
    per batch on a connection of the notifier's pool."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def record_dead_letters(self, letters: Sequence[DeadLetterRecord]) -> None:
        """Record events dead-lettered before they had a delivery row (one statement)."""
        latest = {letter.dedupe_key: letter for letter in letters}.values()
        if not latest:
            return
        async with self.pool.connection() as conn:
            await conn.execute(
                _DEAD_LETTERS,
                (
                    [r.dedupe_key for r in latest], [r.event_id for r in latest],
                    [storable(r.event_type)[:64] for r in latest],
                    [storable(r.user_id)[:128] for r in latest],
                    [r.occurred_at for r in latest],
                    [storable(r.error)[:ERROR_CHARS] for r in latest],
                    [r.reason for r in latest], list(FINAL_STATUSES),
                ),
            )  # fmt: skip

    async def record_attempts(self, attempts: Sequence[FailedAttempt]) -> None:
        """Record attempts Telegram refused or did not answer (one statement)."""
        if attempts:
            # The statement's columns are the record's fields, in order.
            columns = [list(column) for column in zip(*map(astuple, attempts), strict=True)]
            columns[6] = [storable(text)[:ERROR_CHARS] for text in columns[6]]
            async with self.pool.connection() as conn:
                await conn.execute(_ATTEMPTS, columns)


class Notes:
    """Queues failed attempts and early dead letters; writes them in the background."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._store = NoteStore(pool)
        self._attempts = Batcher(500, 0.05, self._write_attempts, on_error=_dropped)
        self._letters = Batcher(500, 0.05, self._write_letters, on_error=_dropped)

    def attempt_failed(self, attempt: FailedAttempt) -> None:
        """Note an attempt Telegram refused or left unanswered."""
        self._attempts.add(attempt)

    def dead_lettered(self, letter: DeadLetterRecord | None) -> None:
        """Note an event dead-lettered without a delivery row (None: nothing to note)."""
        if letter is not None:
            self._letters.add(letter)

    async def _write_attempts(self, batch: list[FailedAttempt]) -> None:
        await _bounded("failed attempts", self._store.record_attempts, batch)

    async def _write_letters(self, batch: list[DeadLetterRecord]) -> None:
        await _bounded("dead letters", self._store.record_dead_letters, batch)


async def _bounded(what: str, write: Any, batch: list[Any]) -> None:
    try:
        async with asyncio.timeout(NOTE_TIMEOUT):
            await write(batch)
    except Exception as exc:  # the delivery log loses a line; delivery goes on
        log.warning("could not record %d %s for the delivery log: %r", len(batch), what, exc)


def _dropped(batch: list[Any], error: Exception) -> None:
    log.warning("dropped %d delivery-log notes: %r", len(batch), error)


def early_letter(event: Event, key: str, outcome: Outcome) -> DeadLetterRecord:
    """What the delivery log keeps of a valid event dead-lettered before delivery."""
    return DeadLetterRecord(
        key,
        event.event_id,
        event.type.value,
        event.user_id,
        event.occurred_at,
        outcome.dead_letter or "processing_error",
        outcome.reason or "",
    )


def unreadable_letter(body: bytes, reason: DeadLetterReason, error: str) -> DeadLetterRecord | None:
    """What the delivery log keeps of a message the contract refused: only when its body still
    names an event id (a UUID) and a user id (text up to 128 characters); else None (the DLQ
    alone has it)."""
    try:
        found = json.loads(body)
        event_id = uuid.UUID(str(found["event_id"]))
        user_id, kind = found["user_id"], found.get("type")
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not 0 < len(user_id) <= 128 or not user_id.isprintable():
        return None
    kind = kind[:64] if isinstance(kind, str) and kind.isprintable() else "unknown"
    try:
        occurred_at: datetime | None = datetime.fromisoformat(found.get("occurred_at"))
        if occurred_at is not None and occurred_at.tzinfo is None:
            occurred_at = None
    except (ValueError, TypeError):
        occurred_at = None
    return DeadLetterRecord(str(event_id), event_id, kind, user_id, occurred_at, reason, error)
