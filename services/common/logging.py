"""Structured logging: JSON lines (or console text) with context fields, secrets never logged.

Every record is one line whatever it carries: messages, fields and tracebacks are redacted and
their control characters escaped by `services.common.safe_text` (in JSON as `\\uXXXX`, in the
console visibly as `\\x1b`, `\\n`, `\\u202e`).
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from services.common.safe_text import escape_controls, json_text, redact, remember_secrets

__all__ = ["configure_logging", "log_context", "mask_chat_id", "redact"]

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "log_context",
    default={},  # noqa: B039 (never mutated: log_context() sets a new dict)
)


def mask_chat_id(chat_id: int | str | None) -> str | None:
    """A chat id safe to log: the last three digits only."""
    if chat_id is None:
        return None
    text = str(chat_id)
    return "…" + text[-3:]


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (event_id, user_id, request_id, ...) to every log line inside the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


# uvicorn's `color_message` is its message again, with terminal colour codes: not a field.
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    extra = {k: v for k, v in record.__dict__.items() if k not in _RESERVED}
    return {**_context.get(), **extra}


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts) or None


class JsonFormatter(logging.Formatter):
    """One JSON object per line; its own fields (ts, level, logger, msg, exc) cannot be
    overridden by a context field or an `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        trace = _traceback(self, record)
        if trace is not None:
            payload["exc"] = trace
        for key, value in _fields(record).items():
            payload.setdefault(key, value)
        return json_text(payload)


def _console_value(value: Any) -> str:
    text = redact(str(value))
    if not text or any(c.isspace() or c in '="' for c in text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escape_controls(text)


class ConsoleFormatter(logging.Formatter):
    """Readable single lines for a developer's terminal; a traceback follows on the same line
    (`exc=...`) with its line breaks shown as `\\n`."""

    def format(self, record: logging.LogRecord) -> str:
        message = escape_controls(redact(record.getMessage()))
        fields = _fields(record)
        trace = _traceback(self, record)
        if trace is not None:
            fields = {**fields, "exc": trace}
        pairs = " ".join(
            f"{escape_controls(redact(str(k)))}={_console_value(v)}" for k, v in fields.items()
        )
        return f"{record.levelname[:4]} {record.name}: {message} {pairs}".rstrip()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route all logging to stderr in the chosen format; quiet noisy libraries. The configured
    secrets (`remember_secrets`) are hidden from every line, whatever quotes them."""
    remember_secrets(os.environ)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiogram.dispatcher: "Start polling", "Polling stopped" (its failures are warnings, kept).
    noisy_loggers = (
        "aiormq",
        "aio_pika",
        "aiogram.event",
        "aiogram.dispatcher",
        "httpx",
        "uvicorn.access",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
