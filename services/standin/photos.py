"""Photos: what `sendPhoto` and `editMessageCaption` (in `methods`) check, as Telegram does for a
photo sent by URL.

The stand-in never downloads anything. It decides as Telegram would for a URL it cannot fetch:
a value that is neither an http(s) URL nor a file id answers 400 "wrong file identifier/HTTP URL
specified"; an http(s) URL on a host under `.invalid` (RFC 2606: never resolvable) answers 400
"failed to get HTTP URL content"; any other URL is taken as a photo. A photo message keeps its
caption where a text message keeps its text (`StoredMessage.text`), and its `photo` (the URL).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from services.standin.model import Text
from services.standin.text import TextError, prepare_text, utf16_len
from services.standin.wire import ApiError

MAX_CAPTION_UTF16 = 1024
"""Telegram's limit on a caption (after entity parsing, in UTF-16 code units)."""

WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"
UNREACHABLE = "Bad Request: failed to get HTTP URL content"
NO_CAPTION = "Bad Request: there is no caption in the message to edit"
NO_TEXT = "Bad Request: there is no text in the message to edit"

_FILE_ID = re.compile(r"^[A-Za-z0-9_-]{20,}$")


def photo_of(params: dict[str, Any]) -> str:
    """The `photo` of a send: an http(s) URL Telegram could fetch, or a file id."""
    raw = params.get("photo")
    if raw in (None, ""):
        raise ApiError(400, "Bad Request: there is no photo in the request")
    value = str(raw)
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        if parts.hostname == "invalid" or parts.hostname.endswith(".invalid"):
            raise ApiError(400, UNREACHABLE)
        return value
    if _FILE_ID.match(value):
        return value
    raise ApiError(400, WRONG_FILE)


def caption_of(params: dict[str, Any], strict_entities: bool) -> Text:
    """The `caption` with its `parse_mode`, parsed as Telegram does; it may be empty."""
    raw = str(params.get("caption") or "")
    parse_mode = params.get("parse_mode") or None
    if not raw:
        return Text("", "", parse_mode, [])
    try:
        shown, entities = prepare_text(raw, parse_mode, None, strict_entities)
    except TextError as e:
        if "too long" not in str(e):
            raise ApiError(400, str(e).replace("message text", "message caption")) from None
        shown, entities = raw, []  # longer than a text may be: too long for a caption too
    if utf16_len(shown) > MAX_CAPTION_UTF16:
        raise ApiError(400, "Bad Request: message caption is too long")
    return Text(shown, raw, parse_mode, entities)
