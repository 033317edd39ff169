"""What the stand-in records of how a message was asked to be delivered (`options`: silence and
link previews), from real aiogram 3, and what it answers for any value of those fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiogram import Bot
from aiogram.types import LinkPreviewOptions
from hypothesis import example, given
from hypothesis import strategies as st

from services.standin.server import StandIn
from services.standin.wire import ApiError, delivery_options

pytestmark = pytest.mark.unit

POST = "https://instagram.com/p/abc"


async def test_silence_and_a_small_preview_are_recorded(standin: StandIn, bot: Bot) -> None:
    preview = LinkPreviewOptions(url=POST, prefer_small_media=True)
    await bot.send_message(42, f"new post {POST}", disable_notification=True,
                           link_preview_options=preview)  # fmt: skip
    await bot.send_message(42, "plain")
    first, second = standin.bot_messages(42)
    assert first["options"] == {
        "disable_notification": True,
        "link_preview_options": {"url": POST, "prefer_small_media": True},
    }
    assert second["options"] == {}


async def test_an_edit_records_its_link_preview(standin: StandIn, bot: Bot) -> None:
    sent = await bot.send_message(42, POST, link_preview_options=LinkPreviewOptions(url=POST))
    await bot.edit_message_text(
        f"{POST} edited",
        chat_id=42,
        message_id=sent.message_id,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    (message,) = standin.bot_messages(42)
    assert message["edited"]
    assert message["options"]["link_preview_options"] == {"is_disabled": True}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(
    silent=JSON | st.sampled_from(["true", "false", "1", "0", ""]),
    preview=JSON | JSON.map(json.dumps) | st.text(max_size=20),
)
@example(silent="true", preview='{"url": "https://x"}')
@example(silent=None, preview="[1, 2]")
def test_any_delivery_options_are_recorded_or_refused_with_a_400(silent: Any, preview: Any):
    """Telegram takes form fields (strings) and JSON bodies; whatever arrives, the stand-in
    records what it understood or answers 400, never a server error."""
    try:
        options = delivery_options(
            {"disable_notification": silent, "link_preview_options": preview}
        )
    except ApiError as error:
        assert error.code == 400 and error.description.startswith("Bad Request: can")
        return
    assert set(options) <= {"disable_notification", "link_preview_options"}
    assert options.get("disable_notification", True) is True
    assert isinstance(options.get("link_preview_options", {}), dict)
