"""The Bot API's wire format: error answers, JSON bodies, parameters read as Telegram reads them.

Every reader raises `ApiError` with Telegram's own description, so a method handler only says
which parameter it wants.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from services.standin.model import Text
from services.standin.text import TextError, prepare_text

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer (UTF-8, compact), for the Bot API and the control API alike."""
    return web.Response(body=dumps(data).encode(), status=status, content_type="application/json")


class ApiError(Exception):
    """An error answer of the Bot API (status code, description, optional parameters)."""

    def __init__(self, code: int, description: str, parameters: dict[str, int] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        """The JSON body Telegram sends for this error."""
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            out["parameters"] = self.parameters
        return out


def as_int(value: Any, name: str) -> int:
    """An integer parameter (a bool is not one)."""
    if isinstance(value, bool):
        raise ApiError(400, f"Bad Request: invalid {name} specified")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {name} specified") from None


def as_bool(value: Any) -> bool:
    """A boolean parameter ("true", "1", "yes" in a form)."""
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return bool(value)


def as_json(value: Any, what: str) -> Any:
    """A parameter that is JSON in a form and already decoded in a JSON body."""
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"Bad Request: can't parse {what} JSON object") from None
    return value


def delivery_options(params: dict[str, Any]) -> dict[str, Any]:
    """What a send asked of its delivery beyond text and buttons, as the stand-in records it
    on the message (tests assert on it; the inbox shows it): `disable_notification` (only when
    true), `link_preview_options` and `message_thread_id` (the forum topic)."""
    options: dict[str, Any] = {}
    if params.get("message_thread_id") not in (None, ""):
        options["message_thread_id"] = as_int(params["message_thread_id"], "message_thread_id")
    if as_bool(params.get("disable_notification", False)):
        options["disable_notification"] = True
    preview = params.get("link_preview_options")
    if preview not in (None, ""):
        preview = as_json(preview, "link_preview_options")
        if not isinstance(preview, dict):
            raise ApiError(400, "Bad Request: can't parse link preview options")
        options["link_preview_options"] = preview
    return options


def reply_markup(value: Any) -> dict[str, Any] | None:
    """Validate a reply_markup parameter like Telegram (inline keyboards in detail)."""
    if value in (None, ""):
        return None
    markup = as_json(value, "reply keyboard markup")
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise ApiError(400, 'Bad Request: field "inline_keyboard" must be an Array of Array')
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise ApiError(400, "Bad Request: BUTTON_TEXT_EMPTY")
            if len(button) == 1:
                raise ApiError(
                    400, "Bad Request: text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not re.match(r"^(https?|tg)://\S+$", str(url)):
                raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
    return markup


def message_text(params: dict[str, Any], strict_html_entities: bool) -> Text:
    """The `text` with its `parse_mode` or `entities`, parsed and checked as Telegram does."""
    raw = params.get("text")
    if raw is None or raw == "":
        raise ApiError(400, "Bad Request: message text is empty")
    raw = str(raw)
    parse_mode = params.get("parse_mode") or None
    entities = None
    if parse_mode is None and params.get("entities"):
        entities = as_json(params["entities"], "entities")
        if not isinstance(entities, list):
            raise ApiError(400, "Bad Request: can't parse entities JSON object")
    try:
        shown, ents = prepare_text(raw, parse_mode, entities, strict_html_entities)
    except TextError as e:
        raise ApiError(400, str(e)) from None
    return Text(shown, raw, parse_mode, ents)
