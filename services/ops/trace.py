"""`sns-telegram trace EVENT_ID`: the whole life of one event, for support answering "why did
user X not get message Y?"; `sns-telegram trace --user USER_ID [--last N]`: that user's last
events, one line each.

The database part is the delivery log (`services/common/delivery_log.py`, the same reads as the
admin endpoint); the dead-letter queue is looked into the way `sns-telegram dlq` does, without
counting a delivery (`services/ops/dlq.py`): the whole queue is read and put back in order.
Everything printed went through `for_terminal` (redacted, controls and bidi marks escaped).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.common.delivery_log import EventTrace, LogItem, LogStatus, trace, user_log
from services.common.safe_text import for_terminal, json_text
from services.ops.amqp import OpsError
from services.ops.dlq import held_queue
from services.ops.letters import DeadLetter
from shared.contract import NOTIFIER_DLQ
from shared.db import create_engine


@dataclass(frozen=True)
class DlqLook:
    """What the dead-letter queue says of the event: its letter, or why it was not looked at."""

    letter: DeadLetter | None = None
    checked: bool = True
    problem: str | None = None


async def look_in_dlq(rabbitmq_url: str, event_id: str) -> DlqLook:
    """The event's letter in the notifier's DLQ, if it is there (every letter is put back)."""
    found = None
    try:
        async with held_queue(rabbitmq_url, NOTIFIER_DLQ) as (held, _):
            async for letter in held:
                if found is None and letter.matches_id(event_id):
                    found = letter
    except OpsError as exc:
        return DlqLook(checked=False, problem=str(exc))
    return DlqLook(found)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _final(item: LogItem) -> str:
    status = item.status
    if status is LogStatus.SENT:
        return f"sent: Telegram message {item.telegram_message_id}"
    if status is LogStatus.EDITED:
        return f"edited: Telegram message {item.telegram_message_id or '-'} updated"
    if status is LogStatus.HELD:
        return f"held for quiet hours until {_when(item.held_until)}"
    if status is LogStatus.SKIPPED:
        return f"skipped: {item.reason or 'no reason recorded'}"
    if status is LogStatus.DEAD_LETTERED:
        return f"dead-lettered ({item.dead_letter}): {item.reason or '-'}"
    if status is LogStatus.SENDING:
        return "being sent (no answer recorded yet)"
    return f"{status.value}: {item.reason or '-'}"


def trace_lines(found: EventTrace, dlq: DlqLook) -> list[str]:
    """The trace as lines, in the order things happened (times in UTC)."""
    timeline: list[tuple[datetime, int, str]] = []

    def at(moment: datetime | None, text: str) -> None:
        if moment is not None:
            timeline.append((moment, len(timeline), text))

    head = [f"event {found.event_id}"]
    if found.activity:
        what = found.activity
        at(what["occurred_at"], f"happened: {what['type']}")
        facts = {k: what[k] for k in ("platform", "post_id", "likes", "comments") if what.get(k)}
        head.append(f"activity: {json_text(facts | what['details'])}")
    for item in found.deliveries:
        head.append(f"type {item.type}, {item.attempts} attempt(s)")
        at(item.received_at, "received: delivery intent recorded")
        if item.preview:
            head.append(f"message: {item.preview}")
    for tried in found.refused_attempts:
        wait = f", retry after {tried['retry_after']} s" if tried.get("retry_after") else ""
        code = f"{tried['error_code']} " if tried.get("error_code") else ""
        at(
            tried["at"],
            f"attempt {tried['attempt']}: Telegram answered {code}{tried['description']} "
            f"({tried['failure']}{wait})",
        )
    at(found.handed_over_at, "hand-over mark: the request was written to Telegram")
    for item in found.deliveries:
        at(item.sent_at or item.updated_at, f"final: {_final(item)}")
    at(found.processed_at, "processed: the event is finished (inbox)")
    for press in found.presses:
        at(press["pressed_at"], f"button pressed: {press['action']} -> {press['outcome']}")
    lines = head + [f"{_when(moment)}  {text}" for moment, _, text in sorted(timeline)]
    if not found.found:
        lines.append("nothing recorded in the database about this event")
    lines.append(_dlq_line(dlq))
    return [for_terminal(line) for line in lines]


def _dlq_line(dlq: DlqLook) -> str:
    if not dlq.checked:
        return f"DLQ: not checked ({dlq.problem or 'skipped'})"
    letter = dlq.letter
    if letter is None:
        return f"DLQ: not in {NOTIFIER_DLQ} (never dead-lettered, or replayed or purged since)"
    return (
        f"DLQ: in {NOTIFIER_DLQ} at position {letter.position}: {letter.reason}: "
        f"{letter.error or '-'} (dead-lettered {_when(letter.dead_lettered_at)}); "
        "replay it with `sns-telegram dlq replay --id` once the cause is fixed"
    )


def user_lines(user_id: str, items: list[LogItem]) -> list[str]:
    """One line per event, newest first."""
    if not items:
        return [for_terminal(f"no notifications recorded for user {user_id}")]
    return [
        for_terminal(f"{_when(item.received_at)}  {item.event_id}  {item.type:<22} {_final(item)}")
        for item in items
    ]


async def _trace(database_url: str, rabbitmq_url: str, event_id: uuid.UUID, dlq: bool) -> Any:
    engine = create_engine(database_url, pool_size=1)
    try:
        found = await trace(engine, event_id)
    finally:
        await engine.dispose()
    look = await look_in_dlq(rabbitmq_url, str(event_id)) if dlq else DlqLook(checked=False)
    return found, look


def run_trace(
    database_url: str, rabbitmq_url: str, event_id: uuid.UUID, *, dlq: bool, as_json: bool
) -> int:
    """Print one event's trace; 0 when anything is known of it, 1 when nothing is."""
    found, look = asyncio.run(_trace(database_url, rabbitmq_url, event_id, dlq))
    if as_json:
        letter = look.letter
        body = found.as_json() | {
            "dlq": {
                "checked": look.checked,
                "present": letter is not None,
                "reason": letter.reason if letter else None,
                "error": letter.error if letter else None,
            }
        }
        print(json_text(body, indent=2))
    else:
        print("\n".join(trace_lines(found, look)))
    return 0 if found.found or look.letter is not None else 1


async def _user(database_url: str, user_id: str, last: int) -> list[LogItem]:
    engine = create_engine(database_url, pool_size=1)
    try:
        return (await user_log(engine, user_id, limit=last)).items
    finally:
        await engine.dispose()


def run_user(database_url: str, user_id: str, last: int, *, as_json: bool) -> int:
    """Print the user's last `last` events."""
    items = asyncio.run(_user(database_url, user_id, last))
    if as_json:
        print(json_text([item.as_json() for item in items], indent=2))
    else:
        print("\n".join(user_lines(user_id, items)))
    return 0
