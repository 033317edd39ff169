"""Which waiting messages a digest takes, decided from a chat's line as it stands (pure)."""

import asyncio
from typing import Any

import pytest

from services.notifier.digests import fold, foldable
from services.notifier.records import DeliveryRow, DeliveryStatus
from services.notifier.render import FOLD_SEPARATOR
from services.notifier.telegram import Options
from services.notifier.work import Item, Send
from shared.contract import new_event

pytestmark = pytest.mark.unit

BUTTONS = [[{"text": "View post", "url": "https://example.com/p/1"}]]


def send(text: str, started: float = 0.0, buttons: Any = None) -> Send:
    """A message waiting in chat 42's line (its event's future is never awaited here)."""
    event = new_event("post_failure", "u1", {"platform": "x", "error": text})
    item = Item(event, event.typed_data(), asyncio.Future(), str(event.event_id))
    row = DeliveryRow(1, item.dedupe_key, DeliveryStatus.SENDING, 0)
    return Send(item, row, 42, text, started=started, buttons=buttons, language="en")


async def test_everything_waiting_within_the_window_is_taken_in_order():
    first, *behind = [send(f"#{i}", started=i * 0.5) for i in range(5)]
    assert foldable(first, behind, minimum=3, window=5.0) == behind


async def test_too_few_waiting_fold_nothing():
    first, behind = send("a"), [send("b")]
    assert foldable(first, behind, minimum=3, window=5.0) == []


async def test_a_message_past_the_window_ends_the_digest():
    first = send("a", started=0.0)
    behind = [send("b", started=1.0), send("c", started=5.0), send("late", started=5.5)]
    assert foldable(first, behind, minimum=3, window=5.0) == behind[:2]


async def test_an_edit_in_the_line_is_never_jumped():
    first, b, c = send("a"), send("b"), send("c")
    edit = None  # an edit holds its place in the line without an entry
    assert foldable(first, [b, edit, c], minimum=3, window=5.0) == []
    assert foldable(first, [b, c, edit], minimum=3, window=5.0) == [b, c]


async def test_a_message_another_digest_carries_ends_the_digest():
    first, b, taken, d = send("a"), send("b"), send("t"), send("d")
    taken.absorbed = True
    assert foldable(first, [b, taken, d], minimum=2, window=5.0) == [b]


async def test_only_what_fits_one_message_is_taken():
    first = send("x" * 2000)
    behind = [send("y" * 2000), send("z" * 2000)]
    assert foldable(first, behind, minimum=2, window=5.0) == behind[:1]


async def test_folding_makes_the_first_the_digest_without_buttons():
    first = send("a", buttons=BUTTONS)
    behind = [send("b"), send("c")]
    fold(first, behind)
    assert first.text == FOLD_SEPARATOR.join(["📬 3 new notifications", "a", "b", "c"])
    assert first.buttons is None and first.folded == behind
    assert all(b.absorbed for b in behind)


async def test_a_digest_is_silent_only_when_everything_it_carries_is():
    first, second = send("a"), send("b")
    first.options = second.options = Options(silent=True)
    fold(first, [second])
    assert first.options.silent
    first, second = send("a"), send("b")
    first.options = Options(silent=True)
    fold(first, [second])
    assert not first.options.silent
