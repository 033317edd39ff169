"""Inspect, replay and purge a dead-letter queue: `sns-telegram dlq list|show|replay|purge`.

Reading without consuming: RabbitMQ has no "peek". Every command takes the messages with
basic.get *without* acknowledging them and holds them until it is done; then it puts back every
message it did not replay or purge as a copy published (with confirms) to the tail of the same
queue, and acknowledges the original only once the copy is confirmed. Requeueing instead
(`basic.nack(requeue)`) would count each look as a delivery: a quorum queue with a delivery
limit (RabbitMQ 4 gives every quorum queue one, 20 by default) drops a message once its count
passes the limit, so merely looking at a dead letter often enough would lose it. The copies go
back in the order they were read, so every command reads the whole queue (even
`list --limit 10`, which only shows 10). Caveats:
- while a command runs, the messages it holds are invisible to everyone else (a second `dlq`
  command at the same time sees a shorter queue), and a command costs a round trip or two per
  message in the queue;
- a command reads only the messages present when it started, so a message dead-lettered
  meanwhile (say, a replayed one that fails again) waits for the next run instead of looping,
  and ends up ahead of the ones the command puts back.
If the command dies, the broker requeues everything it held: nothing is lost (at worst a
message whose copy was confirmed just before is there twice; replays deduplicate by event id).

Two kinds of dead letters are understood: the notifier's own (`dead_letter()` re-publishes the
body with `x-dlq-reason`, `x-dlq-error`, `x-original-routing-key`, `x-dead-lettered-at`) and
RabbitMQ's (a quorum queue's delivery limit, the linker's rejects: an `x-death` header).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pamqp.commands import Basic

from services.ops.amqp import OpsError, connect, existing_exchange, existing_queue
from services.ops.letters import DEAD_LETTER_QUEUES, DeadLetter, Selection
from shared.contract import exchange_of


class HeldMessages:
    """Messages taken from a queue without acknowledgement; `release()` requeues the rest."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, size: int) -> None:
        self._channel = channel
        self._queue = queue
        self._size = size
        self._taken = 0
        self._deleted = 0
        self._unsettled: dict[int, DeadLetter] = {}

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
        letter = DeadLetter.from_message(self._taken, message)
        if message.delivery_tag is not None:
            self._unsettled[message.delivery_tag] = letter
        return letter

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
        del self._unsettled[tag]
        self._deleted += 1

    async def release(self, settle_timeout: float = 5.0) -> None:
        """Put every message still held back, in order, without counting a delivery (nothing to
        do if the channel died: the broker requeues them).

        Each goes back as a confirmed copy at the queue's tail, then the original is
        acknowledged; a copy the broker does not confirm leaves its original to be requeued.
        The queue shows the copies asynchronously; wait (bounded) until it does, so that a command
        run right after this one sees the same queue in the same order.
        """
        held, self._unsettled = self._unsettled, {}
        if not held or self._channel.is_closed:
            return
        try:
            channel = await self._channel.get_underlay_channel()
            exchange = self._channel.default_exchange
            for tag in sorted(held):
                confirmation = await exchange.publish(
                    held[tag].kept_message(), routing_key=self._queue.name, mandatory=True
                )
                if not isinstance(confirmation, Basic.Ack):
                    break  # the rest are requeued when the channel closes
                await channel.basic_ack(tag)
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
    unique prefix of it (at least 4 characters). A number that is no position is read as a
    prefix (an event id may start with digits). Raises `OpsError` if there is none."""
    by_position = int(key) if key.isdigit() else None
    by_prefix = len(key) >= 4
    if not by_prefix and by_position is None:
        raise OpsError("give a position from `dlq list` or at least 4 characters of an id")
    exact: DeadLetter | None = None
    found: list[DeadLetter] = []
    async with held_queue(url, queue) as (held, total):
        async for letter in held:
            if exact is not None:
                continue  # read on all the same: see held_queue
            if letter.position == by_position or letter.matches_id(key):
                exact = letter
            elif by_prefix and (letter.event_id or "").startswith(key):
                found.append(letter)
    if exact is not None:
        return exact
    if by_position is not None and not found:
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
        return f"not routed: no queue is bound to {routing_key!r} on {exchange.name}"
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
    """Re-publish the selected dead letters with their original routing key, to the exchange
    that key travels on (`sns.events`; `sns.telegram.internal` for the internal events, whose
    signature header is kept).

    Each one is published persistent, with its message_id and without the dead-letter headers,
    on a confirming channel with `mandatory`; it is acknowledged (removed from the DLQ) only
    after the broker confirmed it. A message that could not be published stays in the DLQ.
    """
    result = ReplayResult()
    async with held_queue(url, queue) as (held, total), connect(url) as target:
        result.total = total
        channel = await target.channel(publisher_confirms=True, on_return_raises=True)
        exchanges: dict[str, AbstractExchange] = {}
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
                name = exchange_of(routing_key)
                if name not in exchanges:
                    exchanges[name] = await existing_exchange(channel, name)
                failure = await _publish_confirmed(
                    exchanges[name], letter, routing_key, confirm_timeout
                )
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
