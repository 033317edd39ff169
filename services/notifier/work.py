"""The work in flight between the notifier's rooms: an event waiting for its outcome, and the
send or edit it became (each holding its place in its chat's line)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from services.notifier.keyboards import Keyboard
from services.notifier.records import DeliveryRow, EditPlan, Outcome, Plan
from services.notifier.telegram import LOUD, Options
from shared.contract import Event


@dataclass(slots=True)
class Item:
    """One submitted event; `future` resolves once its outcome is durably recorded."""

    event: Event
    data: Any
    future: asyncio.Future[Outcome]
    dedupe_key: str = ""
    trace: Any = None
    """The event's trace context (its consume span), carried to its render and delivery; None
    when tracing is off."""


@dataclass(slots=True)
class Planned:
    """A batch as intake planned it: its items, and each dedupe key's delivery row and plan."""

    items: list[Item]
    rows: dict[str, DeliveryRow]
    plans: dict[str, Plan]


@dataclass(slots=True)
class Send:
    """A message on its way: its text may become a digest of the ones queued behind it."""

    item: Item
    row: DeliveryRow
    chat_id: int
    text: str
    ticket: asyncio.Future[None] = field(init=False)
    """Its place in the chat's line (taken right after it is made, carrying it)."""
    started: float = field(default_factory=time.monotonic)
    buttons: Keyboard | None = None
    language: str = "ko"
    options: Options = LOUD
    folded: list[Send] = field(default_factory=list)
    """Later messages to the same chat that this one carries as a digest."""
    absorbed: bool = False
    """Carried by an earlier message's digest: nothing left to send."""


@dataclass(slots=True)
class Edit:
    """A post's message to edit with its new counts, in its chat's turn."""

    item: Item
    row: DeliveryRow
    plan: EditPlan
    ticket: asyncio.Future[None]
