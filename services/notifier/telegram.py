"""Sending to Telegram and classifying what went wrong (on status and parameters, not text)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import EditMessageCaption, EditMessageText, SendMessage, SendPhoto
from aiogram.methods.base import Response
from aiogram.types import Message
from opentelemetry.trace import SpanKind

from services.common import tracing


class Failure(StrEnum):
    """What a failed send means for the message and the chat."""

    RETRY_AFTER = "retry_after"
    """429: pause every send for `retry_after`, then retry this one."""
    MIGRATED = "migrated"
    """400 with migrate_to_chat_id: resend to the new id and store it."""
    CHAT_GONE = "chat_gone"
    """403 (blocked, deactivated) or 400 chat not found: disable the link; never retry."""
    TOPIC_GONE = "topic_gone"
    """400 message thread not found / TOPIC_CLOSED: the forum topic was closed or deleted; send
    to the group's General topic instead (once) and clear the link's topic."""
    REJECTED = "rejected"
    """Any other 4xx: this message can never be sent as it is; dead-letter it."""
    TRANSIENT = "transient"
    """5xx, or a connection that failed before the request was sent: retry with backoff."""
    UNCERTAIN = "uncertain"
    """The request was sent but no answer came (timeout): it may have been delivered."""


@dataclass(frozen=True)
class SendError(Exception):
    """A classified failure of one send."""

    failure: Failure
    description: str
    error_code: int | None = None
    retry_after: float | None = None
    migrate_to_chat_id: int | None = None

    def __str__(self) -> str:
        code = f"{self.error_code} " if self.error_code else ""
        return f"{self.failure}: {code}{self.description}"

    @property
    def error_type(self) -> str:
        """What a trace records of it (`error.type`): the failure, never the description."""
        return self.failure.value


@dataclass(frozen=True, slots=True)
class Photo:
    """A notification sent as a photo: the image Telegram fetches by URL, and the notification's
    text fitted into a caption (`render.render_caption`)."""

    url: str
    caption: str


SENT_AS_PHOTO: dict[str, Any] = {"sent_as": "photo"}
"""What a delivery row's payload gains when its message went out as a photo: an edit of it
changes the caption (`editMessageCaption`), not the text."""


def sent_as_photo(payload: dict[str, Any] | None) -> bool:
    """Whether the message of a delivery row with this payload is a photo."""
    return payload is not None and payload.get("sent_as") == SENT_AS_PHOTO["sent_as"]


@dataclass(frozen=True, slots=True)
class Options:
    """How a message is delivered, beyond its text and buttons."""

    silent: bool = False
    """Arrives without a sound (`disable_notification`)."""
    preview: str | None = None
    """The post link whose small preview the message shows; None: no preview at all."""
    thread: int | None = None
    """The forum topic it goes to (`message_thread_id`); None: the chat itself (General)."""
    photo: Photo | None = None
    """Sent as this photo with a caption (`sendPhoto`) instead of a text message."""

    def fields(self) -> dict[str, Any]:
        """The request fields of these options (`edit_fields`, the silence and the topic; an
        edit finds its message by id and needs no topic)."""
        fields = self.edit_fields()
        if self.silent:
            fields["disable_notification"] = True
        if self.thread is not None:
            fields["message_thread_id"] = self.thread
        return fields

    def edit_fields(self) -> dict[str, Any]:
        """The fields an edit of the message takes too: a text message's link preview (a photo
        has none).

        Sent as JSON, not through aiogram's `LinkPreviewOptions`, whose unset fields take the
        bot's defaults (`link_preview_is_disabled=True` would hide the preview we ask for)."""
        if self.photo is not None:
            return {}
        if self.preview is None:
            return {"link_preview_options": _NO_PREVIEW}
        return {"link_preview_options": {"url": self.preview, "prefer_small_media": True}}

    def payload(self) -> dict[str, Any]:
        """These options as a held delivery's payload keeps them (nothing for the defaults)."""
        kept: dict[str, Any] = {"silent": True} if self.silent else {}
        if self.preview is not None:
            kept["preview"] = self.preview
        if self.photo is not None:
            kept["photo"], kept["caption"] = self.photo.url, self.photo.caption
        return kept

    @classmethod
    def of_payload(cls, payload: dict[str, Any]) -> Options:
        """The options a held delivery's payload kept."""
        preview = payload.get("preview")  # written by `payload` from a checked link
        url, caption = payload.get("photo"), payload.get("caption")
        photo = Photo(url, caption) if isinstance(url, str) and isinstance(caption, str) else None
        return cls(
            silent=payload.get("silent") is True,
            preview=preview if isinstance(preview, str) else None,
            photo=photo,
        )


_NO_PREVIEW = {"is_disabled": True}


LOUD = Options()
"""The defaults: with a sound, no link preview."""


Markup = dict[str, Any] | None
"""A `reply_markup` as Telegram takes it (signed buttons), or none."""


class TelegramSender(Protocol):
    """The port the notifier sends through; returns the Telegram message id."""

    async def send_text(
        self,
        chat_id: int,
        text: str,
        *,
        reply_markup: dict[str, Any] | None = None,
        on_written: Callable[[], None] | None = None,
        options: Options = LOUD,
    ) -> int: ...

    async def edit_text(
        self, chat: int, message: int, text: str, markup: Markup = None, options: Options = LOUD
    ) -> None:
        """Replace a sent message's text and buttons ("message is not modified" is success)."""
        ...


def classify(exc: Exception) -> SendError:
    """Map an aiogram exception to a `SendError` (parameters first, then the status code)."""
    description = str(getattr(exc, "message", exc))
    if isinstance(exc, TelegramRetryAfter):
        return SendError(Failure.RETRY_AFTER, description, 429, retry_after=float(exc.retry_after))
    if isinstance(exc, TelegramMigrateToChat):
        return SendError(
            Failure.MIGRATED, description, 400, migrate_to_chat_id=exc.migrate_to_chat_id
        )
    if isinstance(exc, TelegramForbiddenError):
        return SendError(Failure.CHAT_GONE, description, 403)
    if isinstance(exc, TelegramBadRequest):
        # Telegram answers 400 for a missing chat and for a bad message alike; only the chat
        # case disables the link, and the description is the only thing that tells them apart.
        if "chat not found" in description.lower():
            return SendError(Failure.CHAT_GONE, description, 400)
        if any(words in description.lower() for words in TOPIC_GONE):
            return SendError(Failure.TOPIC_GONE, description, 400)
        return SendError(Failure.REJECTED, description, 400)
    if isinstance(exc, TelegramUnauthorizedError):
        return SendError(Failure.TRANSIENT, "bot token rejected (401)", 401)
    if isinstance(exc, TelegramServerError):
        return SendError(Failure.TRANSIENT, description, 500)
    if isinstance(exc, TelegramNetworkError):
        cause = exc.__cause__
        if isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            return SendError(Failure.TRANSIENT, f"connection failed: {type(cause).__name__}")
        if isinstance(cause, TimeoutError):
            return SendError(Failure.UNCERTAIN, "no answer before the timeout")
        return SendError(Failure.TRANSIENT, f"network error: {type(cause).__name__}")
    status = getattr(exc, "status_code", None)
    return SendError(Failure.REJECTED, f"{type(exc).__name__}: {description}", status)


TOPIC_GONE = ("message thread not found", "topic_closed", "topic_deleted")
"""What Telegram's 400 says when a message's forum topic is closed or deleted."""


class AiogramSender:
    """`TelegramSender` on aiogram's session: HTML parse mode, link previews as `Options` say.

    The hot path posts `sendMessage` as JSON on aiogram's own aiohttp session. A successful answer
    is read for its `result` only; any other answer goes through aiogram's `check_response`, which
    raises aiogram's exceptions, and `classify` maps them. Skipping aiogram's form encoding of
    every field and its model of the returned Message is most of its CPU cost per message, which
    matters at Telegram's paid-broadcast rates.
    """

    def __init__(self, bot: Bot, *, allow_paid_broadcast: bool = False) -> None:
        self._bot = bot
        self._session = bot.session
        self._extra: dict[str, Any] = {"parse_mode": "HTML"}
        if allow_paid_broadcast:
            self._extra["allow_paid_broadcast"] = True
        self._timeout = aiohttp.ClientTimeout(total=float(bot.session.timeout))
        methods = (
            SendMessage(chat_id=0, text="-"),
            SendPhoto(chat_id=0, photo="-"),
            EditMessageText(chat_id=0, message_id=0, text="-"),
            EditMessageCaption(chat_id=0, message_id=0),
        )
        self._urls = {
            m.__api_method__: bot.session.api.api_url(token=bot.token, method=m.__api_method__)
            for m in methods
        }
        self._methods = {m.__api_method__: m for m in methods}
        """aiogram's method objects, for parsing refusals into its exceptions."""
        self._spans = {
            name: tracing.bot_api_span(bot.session.api.base, name) for name in self._methods
        }

    async def send_text(
        self,
        chat_id: int,
        text: str,
        *,
        reply_markup: dict[str, Any] | None = None,
        on_written: Callable[[], None] | None = None,
        options: Options = LOUD,
    ) -> int:
        """Send one message (a photo with its caption when `options.photo`: `sendPhoto`);
        raise `SendError` classified from Telegram's answer.

        `on_written` is called once the request has been handed to the connection (from then
        on Telegram may act on it even if no answer ever reaches us).
        """
        fields: dict[str, Any] = {"chat_id": chat_id, **self._extra}
        if options.photo is None:
            method, fields["text"] = "sendMessage", text
        else:
            method, fields["photo"] = "sendPhoto", options.photo.url
            fields["caption"] = options.photo.caption
        fields.update(options.fields())
        if reply_markup is not None:
            fields["reply_markup"] = reply_markup
        result = await self._post(method, fields, on_written)
        message_id = result.get("message_id") if isinstance(result, dict) else None
        if not isinstance(message_id, int):  # accepted, but no id to record: do not resend
            raise SendError(Failure.UNCERTAIN, "Telegram accepted the message without an id")
        return message_id

    async def edit_text(
        self, chat: int, message: int, text: str, markup: Markup = None, options: Options = LOUD
    ) -> None:
        """Replace a message's text (a photo's caption: `editMessageCaption`) and buttons;
        "message is not modified" counts as done."""
        fields: dict[str, Any] = {"chat_id": chat, "message_id": message, "parse_mode": "HTML"}
        if options.photo is None:
            method, fields["text"] = "editMessageText", text
        else:
            method, fields["caption"] = "editMessageCaption", options.photo.caption
        fields.update(options.edit_fields())
        if markup is not None:
            fields["reply_markup"] = markup
        try:
            await self._post(method, fields)
        except SendError as error:
            # The same text and buttons again (a repeated metrics update): nothing to change.
            # Telegram says so only in the description of a plain 400.
            if error.error_code == 400 and "message is not modified" in error.description.lower():
                return
            raise

    async def _post(
        self, method: str, fields: dict[str, Any], on_written: Callable[[], None] | None = None
    ) -> Any:
        """POST `fields` to Bot API `method` as JSON; Telegram's `result`, or a classified
        `SendError`. Traced as an HTTP client span (OpenTelemetry's HTTP conventions), the bot
        token redacted."""
        name, attributes = self._spans[method]
        url, parser = self._urls[method], self._methods[method]
        with tracing.span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
            try:
                return await self._request(url, fields, parser, on_written, span)
            except SendError as error:
                # Raised outside the span: a frozen dataclass cannot take the traceback that
                # a context manager's exit assigns to what passes through it.
                failure = error
                tracing.failed(span, error.error_type)
        raise failure

    async def _request(
        self,
        url: str,
        fields: dict[str, Any],
        method: Any,
        on_written: Callable[[], None] | None,
        span: Any,
    ) -> Any:
        body = json.dumps(fields, ensure_ascii=False).encode()
        data = body if on_written is None else _Written(body, on_written)
        http = await self._session.create_session()  # type: ignore[attr-defined]
        try:
            async with http.post(url, data=data, headers=_JSON, timeout=self._timeout) as response:
                raw = await response.text()
        except TimeoutError as exc:
            error = TelegramNetworkError(method=method, message="Request timeout error")
            raise classify(_caused(error, exc)) from exc
        except aiohttp.ClientError as exc:
            error = TelegramNetworkError(method=method, message=f"{type(exc).__name__}: {exc}")
            raise classify(_caused(error, exc)) from exc
        if span is not None:
            span.set_attribute("http.response.status_code", response.status)
        if response.status == 200:
            # The hot path needs only the result's fields, not aiogram's models of it (building
            # a whole Message was ~5 % of the notifier's CPU per event).
            with contextlib.suppress(ValueError):
                answer = json.loads(raw)
                if isinstance(answer, dict) and answer.get("ok") is True:
                    return answer.get("result")
        try:  # anything else: aiogram parses it and raises its exception, which we classify
            checked = self._session.check_response(
                bot=self._bot, method=method, status_code=response.status, content=raw
            )
        except Exception as exc:  # every aiogram failure is classified, none is swallowed
            raise classify(exc) from exc
        return checked.result


_JSON = {"Content-Type": "application/json"}


class _Written(aiohttp.BytesPayload):
    """A request body that reports when it has been written to the connection."""

    def __init__(self, value: bytes, on_written: Callable[[], None]) -> None:
        super().__init__(value, content_type="application/json")
        self._on_written = on_written

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        await super().write_with_length(writer, content_length)
        self._on_written()


# aiogram parametrises `Response[...]` on every call; pydantic caches generic models only weakly,
# so without a strong reference the class is rebuilt (about 1 ms) on most sends.
_RESPONSE_TYPES = (Response[Message], Response[bool], Response[Message | bool])


def _caused(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error
