"""Waiting on a condition with a deadline (never a bare sleep): the one helper tests and
benchmarks share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def eventually(
    predicate: Callable[[], Any],
    timeout: float = 15.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll a sync or async predicate until it returns something truthy, and return that;
    raise AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout:g} s")
        await asyncio.sleep(interval)
