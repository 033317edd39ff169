"""Outside text made safe to show: secrets redacted, control characters escaped.

Event fields, message headers, request headers and exception messages come from outside. Before
any of it reaches a log line or an operator's terminal:

- `redact` replaces secrets: bot tokens (`bot123:ABC`), bearer tokens, JWTs, the password of
  any `scheme://user:password@host` URL, `password=...` parameters, and the exact values of the
  configured secrets (`remember_secrets`, called by `configure_logging` and the CLI);
- `escape_controls` makes every character that could rewrite a terminal, start a new line or
  reorder what is read visible as an escape: C0 controls (`\\x1b`, `\\n`, `\\r`, ...), DEL, C1
  controls (`\\x9b`), bidirectional controls (`\\u202e`, `\\u2066`, ...), the line and
  paragraph separators and lone surrogates (`\\ud800`). Other text, Korean included, is kept.
- `json_line` serialises for a JSON log: the same characters become JSON `\\uXXXX` escapes,
  so the line is one line, parses back to the original text and keeps Korean readable.

This is the one declaration of these rules: logging, the web middleware and the operator CLI
all call it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

# ------------------------------------------------------------------------------------ secrets

# (pattern, replacement, a lowercase text the pattern cannot match without: a cheap test first)
_SECRET_PATTERNS = [
    (re.compile(r"bot\d+:[A-Za-z0-9_-]+"), "bot<redacted>", "bot"),
    (re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer <redacted>", "bearer"),
    # Starts only where a base64url run starts: a long run of "eyJ" costs linear time.
    (
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
        "<jwt redacted>",
        "eyj",
    ),
    (re.compile(r"(?i)(\bpassword=)[^\s&;,'\"]+"), r"\1***", "password="),
]

# `scheme://user:password@`. The password runs to the last "@" of the token: parsers disagree
# on a raw "@" or "/" in a password (yarl takes the last "@" before the first "/", SQLAlchemy
# the first "@"), so hide the most any of them could read as the password. Every repetition is
# bounded, so a long hostile string costs linear time. The user may hold anything but the
# delimiters, raw spaces and line breaks too, and the password raw spaces when it holds no "/"
# (SQLAlchemy accepts them, and so then do our engines).
_URL_PASSWORD = re.compile(
    r"(\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^/?#@:]{0,256}:)(?:\S{0,256}|[^/\n]{0,256})@"
)


_known: tuple[str, ...] = ()
"""Exact secret values of this process's configuration, longest first (`remember_secrets`)."""
MIN_KNOWN_SECRET = 6
"""Shorter values are not remembered: hiding every "guest" or "1234" would hide too much."""
_SECRET_VARIABLE = re.compile(r"(TOKEN|SECRET|PASSWORD|_KEY|_KEYS)$")


def url_password(url: str) -> str | None:
    """The password of a URL given on its own (a setting): everything between the first ":"
    after `scheme://` and the last "@", raw spaces and all; None when there is none."""
    _, separator, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if not separator or not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1] or None


def _secret_values(name: str, value: str) -> list[str]:
    upper = name.upper()
    if upper.endswith("_URL"):
        # As written, decoded, and re-encoded the ways URL libraries render it (SQLAlchemy
        # keeps spaces and "+"): a driver's error may quote any of them.
        password = url_password(value) or ""
        plain = unquote(password)
        return [password, plain, quote(plain, safe=" +"), quote(plain, safe="")]
    if _SECRET_VARIABLE.search(upper):
        return [value, *value.split(",")]
    return []


def remember_secrets(environ: Mapping[str, str]) -> None:
    """Hide from now on the exact values of the secrets configured in `environ`, wherever they
    appear, even outside any URL or token shape (a parser may quote a bad password on its own
    in its error message): the password of every `*_URL` variable and the value (and each
    comma-separated part) of every `*TOKEN`, `*SECRET`, `*PASSWORD`, `*_KEY(S)` variable.
    Replaces what an earlier call remembered."""
    global _known
    found = {
        secret.strip()
        for name, value in environ.items()
        for secret in _secret_values(name, value)
        if len(secret.strip()) >= MIN_KNOWN_SECRET
    }
    _known = tuple(sorted(found, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` without bot tokens, bearer tokens, JWTs, passwords (in URLs or `password=`) and
    the remembered secrets."""
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\1***@", text)
    lowered = text.lower()
    for pattern, replacement, needed in _SECRET_PATTERNS:
        if needed in lowered:
            text = pattern.sub(replacement, text)
    for secret in _known:
        if secret in text:
            text = text.replace(secret, "***")
    return text


# ------------------------------------------------------------------------- control characters

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_SEPARATORS = "\u2028\u2029"
_SURROGATES = "\ud800-\udfff"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}{_SEPARATORS}{_SURROGATES}]")
"""Every character escaped in terminal and console-log output."""
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI}{_SEPARATORS}{_SURROGATES}]")
"""What `json.dumps(ensure_ascii=False)` leaves raw among them (it escapes C0 itself)."""
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape_controls(text: str) -> str:
    """`text` with each control, bidi control, line separator and lone surrogate shown as an
    escape (`\\x1b`, `\\n`, `\\u202e`): one line that cannot move the cursor or reorder text."""
    return _UNSAFE.sub(_visible, text)


def for_terminal(text: str) -> str:
    """Outside text as an operator may see it: redacted, then escaped."""
    return escape_controls(redact(text))


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def redact_value(value: Any) -> Any:
    """A JSON-able copy of `value` with every string redacted (keys too); numbers, booleans and
    None kept; other objects (and NaN, infinity) as redacted strings."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | None):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    return redact(str(value))


def json_text(value: Any, *, indent: int | None = None) -> str:
    """`value` as JSON (redacted) with every unsafe character a `\\uXXXX` escape: it parses
    back to the same (redacted) value, shows no raw control and keeps Korean readable."""
    text = json.dumps(redact_value(value), ensure_ascii=False, indent=indent)
    return _UNSAFE_IN_JSON.sub(_json_escape, text)
