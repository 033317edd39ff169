"""Inline buttons on notifications: pure functions from an event to its keyboard.

A keyboard is built unsigned (plain JSON, so a held delivery can store it) and signed for one
chat just before it is sent: a group that migrated to a supergroup while a message waited gets
buttons signed for its new id, which is where the presses will come from. Signing dates the
buttons (`services.common.callbacks`), so their lifetimes (Retry 7 days, Mute 30, see the
linker's `menu`) count from the send, and an edit (new metrics) dates them anew.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from services.common.callbacks import short_uuid, sign
from services.notifier.render import labels
from shared.contract import MUTABLE_TYPES, EventType

Keyboard = list[list[dict[str, str]]]
"""Rows of buttons; each has `text` and either `url` or `action` + `argument`."""

RETRY = "r"
MUTE = "m"

MAX_URL_CHARS = 2048


def web_url(value: object) -> str | None:
    """`value` as an http(s) URL fit for a URL button, or None (other schemes are skipped)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or len(url) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def keyboard(
    event_type: EventType, event_id: uuid.UUID, data: Mapping[str, Any], language: str
) -> Keyboard:
    """The buttons of one notification: View post (URL), Retry (failures), Mute this type (each
    type users may mute)."""
    words = labels(language)
    rows: Keyboard = []
    url = web_url(data.get("post_url"))
    if url is not None:
        rows.append([{"text": words.view_post, "url": url}])
    actions = []
    if event_type is EventType.POST_FAILURE:
        actions.append({"text": words.retry, "action": RETRY, "argument": short_uuid(event_id)})
    if event_type in MUTABLE_TYPES:
        actions.append({"text": words.mute_type, "action": MUTE, "argument": event_type.value})
    if actions:
        rows.append(actions)
    return rows


def reply_markup(buttons: Keyboard | None, key: bytes, chat_id: int) -> dict[str, Any] | None:
    """The `reply_markup` of sendMessage / editMessageText: the keyboard signed for `chat_id`."""
    if not buttons:
        return None
    return {"inline_keyboard": [[_signed(b, key, chat_id) for b in row] for row in buttons]}


def _signed(button: dict[str, str], key: bytes, chat_id: int) -> dict[str, str]:
    if "url" in button:
        return {"text": button["text"], "url": button["url"]}
    data = sign(key, chat_id, button["action"], button.get("argument", ""))
    return {"text": button["text"], "callback_data": data}
