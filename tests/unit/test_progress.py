"""The stall watch and the batcher's last line of defence (pure, no services)."""

import asyncio

import pytest

from services.notifier.batching import Batcher
from services.notifier.progress import ProgressWatch

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_progress_counts_only_while_work_waits():
    clock = Clock()
    watch = ProgressWatch(clock)
    clock.now += 500
    assert watch.stalled_for(waiting=0) == 0  # idle is not stalled, and resets the clock
    clock.now += 30
    assert watch.stalled_for(waiting=3) == 30
    watch.note()
    clock.now += 5
    assert watch.stalled_for(waiting=3) == 5


def test_a_pause_telegram_imposed_is_excused():
    clock = Clock()
    watch = ProgressWatch(clock)
    clock.now += 90
    # Telegram said retry_after until t=200: nothing may be sent before, so nothing is late yet.
    assert watch.stalled_for(waiting=1, excused_until=200.0) == 0
    clock.now = 220.0
    assert watch.stalled_for(waiting=1, excused_until=200.0) == 20


async def test_a_failing_flush_settles_its_batch_and_the_next_batch_goes_on():
    flushed: list[list[int]] = []
    failed: list[tuple[list[int], str]] = []

    async def flush(batch: list[int]) -> None:
        if 2 in batch:
            raise RuntimeError("boom")
        flushed.append(batch)

    batcher = Batcher(2, 0.0, flush, on_error=lambda batch, exc: failed.append((batch, str(exc))))
    for item in (1, 2, 3, 4):
        batcher.add(item)
    for _ in range(100):
        if flushed:
            break
        await asyncio.sleep(0.01)
    assert failed == [([1, 2], "boom")]
    assert flushed == [[3, 4]]
