"""Grouping work into batches, so the database sees one statement per batch, not per event; a
batch's database work waits out an outage of the database (`retry_while_unreachable`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from shared.db import is_transient

log = logging.getLogger(__name__)
outage_log = logging.getLogger("notifier")


class Batcher:
    """Runs `flush` on groups of queued items, one group at a time, in arrival order.

    An idle batcher waits `wait` seconds for company before flushing; while a flush runs, new
    items gather into the next group (up to `size`), so batches grow with the load.

    A flush that raises must not strand its items (their owners would wait forever) nor stop
    the batches behind it: `on_error(batch, error)` settles them, and the next batch goes on.
    """

    def __init__(
        self,
        size: int,
        wait: float,
        flush: Callable[[list[Any]], Awaitable[None]],
        on_error: Callable[[list[Any], Exception], None],
    ):
        self._size = size
        self._wait = wait
        self._flush = flush
        self._on_error = on_error
        self._items: list[Any] = []
        self._flushing: list[Any] = []
        self._worker: asyncio.Task[None] | None = None
        self._full = asyncio.Event()

    def add(self, item: Any) -> None:
        """Queue one item (synchronously, so arrival order is kept)."""
        self._items.append(item)
        if len(self._items) >= self._size:
            self._full.set()
        if self._worker is None:
            self._worker = asyncio.create_task(self._work())

    async def _work(self) -> None:
        try:
            while self._items:
                if len(self._items) < self._size:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._wait):
                            await self._full.wait()
                self._full.clear()
                batch, self._items = self._items[: self._size], self._items[self._size :]
                self._flushing = batch
                try:
                    await self._flush(batch)
                except Exception as exc:  # the last line of defence: settle, carry on
                    log.exception("a batch of %d failed unexpectedly", len(batch))
                    self._on_error(batch, exc)
                finally:
                    self._flushing = []
        finally:
            self._worker = None

    def cancel(self) -> None:
        """Cancel the running flush and drop queued items: the owners of both see cancellation
        (the items of a flush cut short must not be waited on forever)."""
        if self._worker is not None:
            self._worker.cancel()
        for item in [*self._flushing, *self._items]:
            future = item.future if hasattr(item, "future") else item[1]
            future.cancel()
        self._items = []


async def retry_while_unreachable(
    what: str,
    work: Callable[[Any], Awaitable[Any]],
    arg: Any,
    *,
    cap: float,
    waiting: Callable[[], None],
) -> Any:
    """`await work(arg)` (a batch's database work), again and again while the database is
    unreachable, backing off up to `cap` seconds and calling `waiting` before each wait (an
    outage is not a stall: the readiness check reports it); any other error is raised at once."""
    delay = 0.1
    while True:
        try:
            return await work(arg)
        except Exception as exc:
            if not is_transient(exc):
                raise
            outage_log.warning("database unavailable, retrying %s: %r", what, exc)
        waiting()
        await asyncio.sleep(delay)
        delay = min(delay * 2, cap)
