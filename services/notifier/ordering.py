"""Order: sends to one chat in arrival order (`ChatSequencer`), so rate limits never reorder a
chat's messages, and events in the broker's delivery order (`DeliveryOrder`)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class ChatSequencer:
    """Keeps sends to one chat in arrival order: a ticket is taken synchronously on arrival,
    and each send waits until every earlier ticket of its chat has finished. Each place in a
    line may carry an entry (what waits there), so the one whose turn it is can see who waits
    behind it."""

    def __init__(self) -> None:
        self._queues: dict[int, deque[tuple[asyncio.Future[None], Any]]] = {}

    def enter(self, chat_id: int, entry: Any = None) -> asyncio.Future[None]:
        """Take the next place in `chat_id`'s line; await the returned future for one's turn."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self._queues.setdefault(chat_id, deque())
        line.append((future, entry))
        if len(line) == 1:
            future.set_result(None)
        return future

    def leave(self, chat_id: int, ticket: asyncio.Future[None]) -> None:
        """Give up the turn (after sending, or on failure); wakes the next in line."""
        line = self._queues.get(chat_id)
        if not line:
            return
        place = next((i for i, (future, _) in enumerate(line) if future is ticket), None)
        if place is None:
            return
        del line[place]
        if not line:
            del self._queues[chat_id]
        elif place == 0 and not line[0][0].done():
            line[0][0].set_result(None)

    def behind(self, chat_id: int, ticket: asyncio.Future[None]) -> list[Any]:
        """The entries queued after `ticket` in `chat_id`'s line, in order."""
        line = self._queues.get(chat_id, ())
        for place, (future, _) in enumerate(line):
            if future is ticket:
                return [entry for _, entry in list(line)[place + 1 :]]
        return []

    def waiting(self, chat_id: int) -> int:
        """How many sends are queued for `chat_id` (including the one sending)."""
        return len(self._queues.get(chat_id, ()))


class DeliveryOrder:
    """Restores the broker's delivery order, which per-message handler tasks may swap.

    RabbitMQ numbers deliveries on a channel 1, 2, 3, ...; a handler waits its turn before
    queueing its event and calls `done` right after. A gap that does not fill within
    `max_wait` seconds (a reconnect renumbers from 1) is skipped, never waited on forever.
    """

    def __init__(self, max_wait: float = 0.5) -> None:
        self._next = 1
        self._max_wait = max_wait
        self._waiters: dict[int, asyncio.Future[None]] = {}

    async def wait_turn(self, tag: int) -> None:
        """Return when every delivery before `tag` has been queued (or given up on)."""
        if tag <= self._next:  # our turn, or the channel was reopened and numbering restarted
            self._next = tag
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[tag] = future
        try:
            async with asyncio.timeout(self._max_wait):
                await future
        except TimeoutError:
            self._next = tag
        finally:
            self._waiters.pop(tag, None)

    def done(self, tag: int) -> None:
        """Delivery `tag` is queued: let the next one go."""
        self._next = max(self._next, tag + 1)
        waiter = self._waiters.get(self._next)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
