"""Inspect, replay and purge a dead-letter queue: `sns-telegram dlq list|show|replay|purge`.

Reading without consuming: RabbitMQ has no "peek". Every command takes the messages with
basic.get *without* acknowledging them and holds them until it is done; then it returns every
message it did not replay or purge with one `basic.nack(multiple, requeue)`. A quorum queue puts
requeued messages at its tail, so every command reads the whole queue (even `list --limit 10`,
which only shows 10) and the order is kept. Caveats:
- while a command runs, the messages it holds are invisible to everyone else (a second `dlq`
  command at the same time sees a shorter queue), and a command costs one round trip per
  message in the queue;
- each read counts as a delivery in the quorum DLQ's `x-delivery-count` ("deliveries" below);
- a command reads only the messages present when it started, so a message dead-lettered
  meanwhile (say, a replayed one that fails again) waits for the next run instead of looping,
  and ends up ahead of the ones the command returns.
If the command dies, the broker requeues everything it held: nothing is lost.

Two kinds of dead letters are understood: the notifier's own (`dead_letter()` re-publishes the
body with `x-dlq-reason`, `x-dlq-error`, `x-original-routing-key`, `x-dead-lettered-at`) and
RabbitMQ's (a quorum queue's delivery limit, the linker's rejects: an `x-death` header).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from pamqp.commands import Basic
from rich import box
from rich.console import Console
from rich.json import JSON
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.prompt import Confirm
from rich.table import Table
from rich.text import Text

from services.ops.amqp import OpsError, connect, existing_exchange, existing_queue
from shared.contract import (
    DLQ_ERROR_HEADER,
    DLQ_REASON_HEADER,
    EXCHANGE,
    LINKER_DLQ,
    NOTIFIER_DLQ,
    InvalidEvent,
    parse_event,
)

DEAD_LETTER_QUEUES = (NOTIFIER_DLQ, LINKER_DLQ)
"""The queues these commands may work on (never a live queue: replaying one would duplicate)."""

ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
DEAD_LETTERED_AT_HEADER = "x-dead-lettered-at"
DEATH_HEADER = "x-death"
DELIVERY_COUNT_HEADER = "x-delivery-count"

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
ERROR_WIDTH = 60


# ----------------------------------------------------------------------------- the pure core


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
        """Earlier deliveries from the DLQ itself (each read by a `dlq` command counts)."""
        count = self.headers.get(DELIVERY_COUNT_HEADER)
        return count if isinstance(count, int) else None

    def matches_id(self, key: str) -> bool:
        """True when `key` is this message's event id or message_id."""
        return key in {self.event_id, self.properties.get("message_id")}

    def replay_message(self) -> aio_pika.Message:
        """The message a replay publishes: same body and properties, persistent, headers cleaned."""
        props = self.properties
        return aio_pika.Message(
            body=self.body,
            headers=replay_headers(self.headers),
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


# ----------------------------------------------------------------------------- the broker edge


class HeldMessages:
    """Messages taken from a queue without acknowledgement; `release()` requeues the rest."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, size: int) -> None:
        self._channel = channel
        self._queue = queue
        self._size = size
        self._taken = 0
        self._deleted = 0
        self._unsettled: set[int] = set()

    @property
    def taken(self) -> int:
        """How many messages were read so far."""
        return self._taken

    async def take(self) -> DeadLetter | None:
        """The next message (held), or None once `size` messages (those present at the start:
        not the ones dead-lettered meanwhile) were taken or the queue is empty."""
        if self._taken >= self._size:
            return None
        message = await self._queue.get(no_ack=False, fail=False)
        if message is None:
            return None
        self._taken += 1
        if message.delivery_tag is not None:
            self._unsettled.add(message.delivery_tag)
        return DeadLetter.from_message(self._taken, message)

    def __aiter__(self) -> AsyncIterator[DeadLetter]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[DeadLetter]:
        while (letter := await self.take()) is not None:
            yield letter

    async def delete(self, letter: DeadLetter) -> None:
        """Acknowledge a held message: it leaves the queue for good."""
        tag = letter.delivery_tag
        if tag is None or tag not in self._unsettled:
            raise ValueError(f"message {letter.position} is not held here")
        channel = await self._channel.get_underlay_channel()
        await channel.basic_ack(tag)
        self._unsettled.discard(tag)
        self._deleted += 1

    async def release(self, settle_timeout: float = 5.0) -> None:
        """Requeue every message still held, in order (nothing to do if the channel died).

        The queue applies the requeue asynchronously; wait (bounded) until it shows the messages
        again, so that a command run right after this one sees the same queue in the same order.
        """
        held, self._unsettled = self._unsettled, set()
        if not held or self._channel.is_closed:
            return
        try:
            channel = await self._channel.get_underlay_channel()
            await channel.basic_nack(max(held), multiple=True, requeue=True)
            expected = self._size - self._deleted
            deadline = time.monotonic() + settle_timeout
            while time.monotonic() < deadline:
                queue = await self._channel.declare_queue(self._queue.name, passive=True)
                if (queue.declaration_result.message_count or 0) >= expected:
                    return
                await asyncio.sleep(0.01)
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
            # The channel or connection failed: closing it requeues whatever it held anyway.
            return


def _check_queue(queue: str) -> None:
    if queue not in DEAD_LETTER_QUEUES:
        raise OpsError(f"{queue!r} is not a dead-letter queue; use one of {DEAD_LETTER_QUEUES}")


@asynccontextmanager
async def held_queue(url: str, queue_name: str) -> AsyncIterator[tuple[HeldMessages, int]]:
    """The DLQ's messages (those present now) and its size now.

    Callers read every message before releasing: a quorum queue puts requeued messages at its
    tail, so returning only the head would move it behind the rest.
    """
    _check_queue(queue_name)
    async with connect(url) as connection:
        channel = await connection.channel()
        queue, count = await existing_queue(channel, queue_name)
        held = HeldMessages(channel, queue, count)
        try:
            yield held, count
        finally:
            await held.release()


@dataclass
class Listing:
    """What `dlq list` read."""

    queue: str
    total: int
    letters: list[DeadLetter]


async def browse(url: str, queue: str, *, limit: int | None = None) -> Listing:
    """The first `limit` messages of the DLQ; all of them are put back, in order."""
    letters: list[DeadLetter] = []
    async with held_queue(url, queue) as (held, total):
        async for letter in held:
            if limit is None or len(letters) < limit:
                letters.append(letter)
    return Listing(queue, total, letters)


async def find(url: str, queue: str, key: str) -> DeadLetter:
    """The message at position `key` (a number), or with event id / message_id `key` or a
    unique prefix of it (at least 4 characters). Raises `OpsError` if there is none."""
    by_position = int(key) if key.isdigit() else None
    if by_position is None and len(key) < 4:
        raise OpsError("give a position from `dlq list` or at least 4 characters of an id")
    exact: DeadLetter | None = None
    found: list[DeadLetter] = []
    async with held_queue(url, queue) as (held, total):
        async for letter in held:
            if exact is not None:
                continue  # read on all the same: see held_queue
            if letter.position == by_position or letter.matches_id(key):
                exact = letter
            elif by_position is None and (letter.event_id or "").startswith(key):
                found.append(letter)
    if exact is not None:
        return exact
    if by_position is not None:
        raise OpsError(f"{queue} has {total} message(s): there is no position {by_position}")
    if len(found) > 1:
        ids = ", ".join(letter.event_id or "?" for letter in found[:5])
        raise OpsError(f"{key!r} is ambiguous in {queue}: {ids}")
    if not found:
        raise OpsError(f"no message with id {key!r} in {queue}")
    return found[0]


@dataclass
class ReplayResult:
    """What a replay did; `failed` letters are still in the DLQ."""

    total: int = 0
    scanned: int = 0
    replayed: list[DeadLetter] = field(default_factory=list)
    planned: list[DeadLetter] = field(default_factory=list)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)
    stopped: str | None = None


ProgressHook = Callable[[int, int], None]
"""Called with (messages read, messages to read) as a replay goes."""


async def _publish_confirmed(
    exchange: AbstractExchange, letter: DeadLetter, routing_key: str, confirm_timeout: float
) -> str | None:
    """Publish one replay and wait for the confirm; the failure in words, None on success."""
    try:
        confirmation = await exchange.publish(
            letter.replay_message(),
            routing_key=routing_key,
            mandatory=True,
            timeout=confirm_timeout,
        )
    except aio_pika.exceptions.PublishError:
        return f"not routed: no queue is bound to {routing_key!r} on {EXCHANGE}"
    except aio_pika.exceptions.DeliveryError as exc:
        return f"refused by the broker: {exc!r}"
    except TimeoutError:
        return f"not confirmed within {confirm_timeout:g}s (may be published twice on a retry)"
    if not isinstance(confirmation, Basic.Ack):
        return f"refused by the broker: {confirmation!r}"
    return None


async def replay(
    url: str,
    queue: str,
    selection: Selection,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    confirm_timeout: float = 10.0,
    progress: ProgressHook | None = None,
) -> ReplayResult:
    """Re-publish the selected dead letters to `sns.events` with their original routing key.

    Each one is published persistent, with its message_id and without the dead-letter headers,
    on a confirming channel with `mandatory`; it is acknowledged (removed from the DLQ) only
    after the broker confirmed it. A message that could not be published stays in the DLQ.
    """
    result = ReplayResult()
    async with held_queue(url, queue) as (held, total), connect(url) as target:
        result.total = total
        channel = await target.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await existing_exchange(channel, EXCHANGE)
        attempted = 0
        async for letter in held:
            result.scanned = held.taken
            if progress is not None:
                progress(held.taken, total)
            if not selection.matches(letter) or (limit is not None and attempted >= limit):
                continue  # not for this replay (read on all the same: see held_queue)
            attempted += 1
            routing_key = letter.routing_key
            if routing_key is None:
                result.failed.append((letter, "no original routing key in its headers or body"))
                continue
            if dry_run:
                result.planned.append(letter)
                continue
            try:
                failure = await _publish_confirmed(exchange, letter, routing_key, confirm_timeout)
            except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                result.failed.append((letter, f"publishing failed: {exc!r}"))
                result.stopped = "the publishing channel failed; the rest were not tried"
                limit = attempted
            if failure is not None:
                result.failed.append((letter, failure))
                continue
            await held.delete(letter)
            result.replayed.append(letter)
        result.scanned = held.taken
    return result


@dataclass
class PurgeResult:
    """What a purge did."""

    total: int = 0
    matched: Counter[str] = field(default_factory=Counter)
    deleted: int = 0
    confirmed: bool = False


async def purge(
    url: str,
    queue: str,
    selection: Selection,
    *,
    confirm: Callable[[int, Counter[str]], bool],
) -> PurgeResult:
    """Delete (ack) the selected dead letters once `confirm(count, by_reason)` says yes.

    Reads the whole queue first and holds it while asking, so exactly the messages counted in
    the question are deleted; a "no" puts everything back.
    """
    result = PurgeResult()
    async with held_queue(url, queue) as (held, total):
        result.total = total
        doomed = [letter async for letter in held if selection.matches(letter)]
        result.matched = Counter(letter.reason for letter in doomed)
        if not doomed:
            return result
        result.confirmed = await asyncio.to_thread(confirm, len(doomed), result.matched)
        if not result.confirmed:
            return result
        for letter in doomed:
            await held.delete(letter)
            result.deleted += 1
    return result


# ----------------------------------------------------------------------------- rendering and CLI


def make_console(*, stderr: bool = False) -> Console:
    """A console; when not on a terminal, wide enough that ids are never cut."""
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    return Console(stderr=stderr, width=wide, highlight=False)


def _shorten(text: str, width: int = ERROR_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def letters_table(
    letters: Iterable[DeadLetter], *, title: str | None = None, targets: bool = False
) -> Table:
    """The `dlq list` table (with `targets`: the routing key each would be replayed with)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("event id", no_wrap=True, min_width=36)
    table.add_column("type", no_wrap=True)
    table.add_column("reason", no_wrap=True)
    table.add_column("error", ratio=1, min_width=16)
    table.add_column("dead-lettered at", no_wrap=True, min_width=20)
    table.add_column("deliveries", justify="right", no_wrap=True)
    if targets:
        table.add_column("replays to", no_wrap=True)
    for letter in letters:
        deliveries = letter.deliveries
        cells: list[str | Text] = [
            str(letter.position),
            Text(letter.event_id or "-"),
            Text(letter.event_type or "-"),
            Text(letter.reason),
            Text(_shorten(letter.error) or "-"),
            _when(letter.dead_lettered_at),
            "-" if deliveries is None else str(deliveries),
        ]
        if targets:
            cells.append(Text(letter.routing_key or "(unknown)"))
        table.add_row(*cells)
    return table


def print_listing(listing: Listing, console: Console) -> None:
    """Print what `dlq list` read."""
    if not listing.letters:
        console.print(f"{listing.queue} is empty.", markup=False)
        return
    shown = len(listing.letters)
    console.print(
        letters_table(
            listing.letters,
            title=f"{listing.queue}: {listing.total} message(s), showing 1-{shown}",
        )
    )
    reasons = Counter(letter.reason for letter in listing.letters)
    console.print(
        "by reason: " + ", ".join(f"{reason} {n}" for reason, n in reasons.most_common()),
        markup=False,
    )
    if shown < listing.total:
        console.print(f"({listing.total - shown} more: use --limit)", markup=False)


def _header_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def print_letter(letter: DeadLetter, queue: str, console: Console) -> None:
    """Print one dead letter in full: summary, properties, headers, body."""
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    rows: list[tuple[str, str]] = [
        ("queue", f"{queue} (position {letter.position})"),
        ("event id", letter.event_id or "-"),
        ("type", letter.event_type or "-"),
        ("reason", letter.reason),
        ("error", letter.error or "-"),
        ("dead-lettered at", _when(letter.dead_lettered_at)),
        ("replays to", f"{EXCHANGE} with routing key {letter.routing_key or '(unknown)'}"),
        ("deliveries", "-" if letter.deliveries is None else str(letter.deliveries)),
        ("valid event", "yes" if letter.valid else f"no: {letter.problem}"),
    ]
    for name, value in rows:
        summary.add_row(name, Text(value))
    console.print(summary)
    for title, values in (("properties", letter.properties), ("headers", letter.headers)):
        table = Table(title=title, title_justify="left", show_header=False)
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for name, value in values.items():
            table.add_row(Text(name), Text(_header_value(value)))
        console.print(table)
    console.print(Text("body", style="bold"))
    try:
        console.print(JSON(letter.body.decode("utf-8")))
    except (ValueError, UnicodeDecodeError):
        console.print(Text(letter.body.decode("utf-8", "replace")))
        console.print(Text("(the body is not valid JSON)", style="yellow"))


def _fail(console: Console, exc: Exception) -> int:
    console.print(Text(f"error: {exc}", style="red"))
    return 1


def run_list(
    url: str,
    queue: str,
    *,
    limit: int | None,
    console: Console | None = None,
    errors: Console | None = None,
) -> int:
    """`dlq list`: the table of the first `limit` messages, all left in the queue."""
    console = console or make_console()
    try:
        listing = asyncio.run(browse(url, queue, limit=limit))
    except OpsError as exc:
        return _fail(errors or make_console(stderr=True), exc)
    print_listing(listing, console)
    return 0


def run_show(
    url: str, queue: str, key: str, *, console: Console | None = None, errors: Console | None = None
) -> int:
    """`dlq show`: one message's headers and body, left in the queue."""
    console = console or make_console()
    try:
        letter = asyncio.run(find(url, queue, key))
    except OpsError as exc:
        return _fail(errors or make_console(stderr=True), exc)
    print_letter(letter, queue, console)
    return 0


async def _replay_with_progress(
    url: str,
    queue: str,
    selection: Selection,
    *,
    limit: int | None,
    dry_run: bool,
    console: Console,
) -> ReplayResult:
    columns = (
        TextColumn("replaying {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(queue, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return await replay(url, queue, selection, limit=limit, dry_run=dry_run, progress=advance)


def run_replay(
    url: str,
    queue: str,
    selection: Selection,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    console: Console | None = None,
    errors: Console | None = None,
) -> int:
    """`dlq replay`: 0 when every selected message was replayed (or would be, with dry_run)."""
    console = console or make_console()
    errors = errors or make_console(stderr=True)
    try:
        result = asyncio.run(
            _replay_with_progress(
                url, queue, selection, limit=limit, dry_run=dry_run, console=console
            )
        )
    except OpsError as exc:
        return _fail(errors, exc)
    except (aio_pika.exceptions.AMQPError, ConnectionError) as exc:
        return _fail(
            errors,
            OpsError(
                f"lost the connection to RabbitMQ: {exc!r}; every message not yet acknowledged "
                "is back in the DLQ (one replayed just now may be replayed again: consumers "
                "deduplicate by event_id)"
            ),
        )
    if dry_run:
        if result.planned:
            console.print(letters_table(result.planned, title="would replay", targets=True))
        console.print(
            f"dry run: would replay {len(result.planned)} of {result.total} message(s) "
            f"({selection.describe()}); nothing was changed",
            markup=False,
        )
    else:
        console.print(
            f"replayed {len(result.replayed)} of {result.total} message(s) from {queue} "
            f"to {EXCHANGE} ({selection.describe()})",
            markup=False,
        )
    for letter, why in result.failed:
        errors.print(
            Text(f"left in {queue}: {letter.event_id or letter.position} ({letter.event_type}): ")
            + Text(why),
            style="red",
        )
    if result.stopped:
        errors.print(Text(f"stopped: {result.stopped}", style="red"))
    return 1 if result.failed else 0


def ask_on_terminal(question: str) -> bool:
    """A yes/no question on the terminal (no answer, e.g. no stdin, means no)."""
    try:
        return Confirm.ask(question, console=make_console(stderr=True), default=False)
    except EOFError:
        return False


def run_purge(
    url: str,
    queue: str,
    selection: Selection,
    *,
    yes: bool = False,
    ask: Callable[[str], bool] = ask_on_terminal,
    console: Console | None = None,
    errors: Console | None = None,
) -> int:
    """`dlq purge`: delete the selected messages after a confirmation (or --yes)."""
    console = console or make_console()
    errors = errors or make_console(stderr=True)

    def confirm(count: int, reasons: Counter[str]) -> bool:
        if yes:
            return True
        detail = ", ".join(f"{reason} {n}" for reason, n in reasons.most_common())
        return ask(f"Delete {count} message(s) ({detail}) from {queue} for good?")

    try:
        result = asyncio.run(purge(url, queue, selection, confirm=confirm))
    except OpsError as exc:
        return _fail(errors, exc)
    matched = sum(result.matched.values())
    if matched == 0:
        console.print(
            f"nothing to delete: no message of {result.total} matches ({selection.describe()})",
            markup=False,
        )
        return 0
    if not result.confirmed:
        errors.print(Text("aborted: nothing was deleted", style="yellow"))
        return 1
    console.print(f"deleted {result.deleted} message(s) from {queue}", markup=False)
    return 0
