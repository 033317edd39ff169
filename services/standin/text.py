"""Telegram message-text rules for the Bot API stand-in: HTML parse mode, trimming, length."""

from __future__ import annotations

import re
from typing import Any

MAX_TEXT_UTF16 = 4096

# Tag name -> entity type (span and a/pre/code/blockquote/tg-emoji need attributes, see below).
_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_ALL_TAGS = {*_SIMPLE_TAGS, "a", "span", "tg-emoji"}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPECIAL = re.compile(r"[<&]")
_SPACE = " \t\n\r\v\f"
_TRIM = " \t\n\r\v\f\u00a0"


class TextError(ValueError):
    """Text that Telegram would reject; the message is the Bot API description."""


def utf16_len(s: str) -> int:
    """Length of `s` in UTF-16 code units, the unit Telegram counts in."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le")) // 2


def _byte_offset(src: str, i: int) -> int:
    return len(src[:i].encode("utf-8"))


def _decode_entity(src: str, i: int) -> tuple[str, int] | None:
    """Decode the HTML entity at src[i] == '&' like tdlib (';' optional); None if not one."""
    n = len(src)
    j = i + 1
    if j < n and src[j] == "#":
        j += 1
        hexa = j < n and src[j] in "xX"
        if hexa:
            j += 1
        start = j
        digits = "0123456789abcdefABCDEF" if hexa else "0123456789"
        while j < n and src[j] in digits:
            j += 1
        if j == start or j - i >= 10:
            return None
        code = int(src[start:j], 16 if hexa else 10)
        if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        char = chr(code)
    else:
        while j < n and src[j].isascii() and src[j].isalpha():
            j += 1
        named = _NAMED_ENTITIES.get(src[i + 1 : j])
        if named is None:
            return None
        char = named
    if j < n and src[j] == ";":
        j += 1
    return char, j


def _parse_attributes(src: str, i: int, tag: str, tag_pos: int) -> tuple[dict[str, str], int]:
    """Parse attributes from src[i] up to '>'; returns (attributes, index after '>')."""
    n = len(src)
    attrs: dict[str, str] = {}
    unclosed = f"Unclosed start tag at byte offset {_byte_offset(src, tag_pos)}"
    while True:
        while i < n and src[i] in _SPACE:
            i += 1
        if i >= n:
            raise TextError(unclosed)
        if src[i] == ">":
            return attrs, i + 1
        start = i
        while i < n and src[i] not in _SPACE and src[i] not in "=>":
            i += 1
        name = src[start:i].lower()
        if not name:
            raise TextError(
                f'Empty attribute name in the tag "{tag}" '
                f"at byte offset {_byte_offset(src, tag_pos)}"
            )
        while i < n and src[i] in _SPACE:
            i += 1
        if i >= n:
            raise TextError(unclosed)
        if src[i] != "=":
            if tag == "blockquote" and name == "expandable":
                attrs[name] = ""
                continue
            raise TextError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {_byte_offset(src, tag_pos)}"
            )
        i += 1
        while i < n and src[i] in _SPACE:
            i += 1
        if i >= n:
            raise TextError(unclosed)
        quote = src[i]
        if quote in "\"'":
            end = src.find(quote, i + 1)
            if end < 0:
                raise TextError(unclosed)
            raw_value = src[i + 1 : end]
            i = end + 1
        else:
            start = i
            while i < n and (src[i].isalnum() or src[i] in ".-"):
                i += 1
            raw_value = src[start:i]
        attrs[name] = _decode_attribute(raw_value)


def _decode_attribute(raw: str) -> str:
    if "&" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "&" and (decoded := _decode_entity(raw, i)) is not None:
            out.append(decoded[0])
            i = decoded[1]
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


class _Open:
    __slots__ = ("attrs", "pos", "start", "tag")

    def __init__(self, tag: str, attrs: dict[str, str], start: int, pos: int) -> None:
        self.tag = tag
        self.attrs = attrs
        self.start = start  # UTF-16 offset in the displayed text
        self.pos = pos  # index in the source (for error messages)


def parse_html(src: str, strict_entities: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-HTML into (displayed text, entities); raises TextError like Telegram.

    With strict_entities a '&' that starts no valid entity is an error (real Telegram keeps
    it as text): stricter, so that forgotten escaping is caught.
    """
    if "<" not in src and "&" not in src:
        return src, []
    out: list[str] = []
    pos16 = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    n = len(src)
    i = 0
    while i < n:
        m = _SPECIAL.search(src, i)
        end = m.start() if m else n
        if end > i:
            chunk = src[i:end]
            out.append(chunk)
            pos16 += utf16_len(chunk)
            i = end
            if i >= n:
                break
        if src[i] == "&":
            decoded = _decode_entity(src, i)
            if decoded is None:
                if strict_entities:
                    raise TextError(
                        f"Unsupported HTML entity at byte offset {_byte_offset(src, i)}: "
                        'a bare "&" must be written as "&amp;"'
                    )
                out.append("&")
                pos16 += 1
                i += 1
            else:
                out.append(decoded[0])
                pos16 += utf16_len(decoded[0])
                i = decoded[1]
            continue
        # src[i] == "<"
        if i + 1 < n and src[i + 1] == "/":
            close = src.find(">", i)
            if close < 0:
                raise TextError(f"Unclosed end tag at byte offset {_byte_offset(src, i)}")
            name = src[i + 2 : close].strip(_SPACE).lower()
            if not stack:
                raise TextError(f"Unexpected end tag at byte offset {_byte_offset(src, i)}")
            if name != stack[-1].tag:
                raise TextError(
                    f"Unmatched end tag at byte offset {_byte_offset(src, i)}, "
                    f'expected "</{stack[-1].tag}>", found "</{name}>"'
                )
            _close_tag(stack.pop(), pos16, stack, entities)
            i = close + 1
            continue
        j = i + 1
        while j < n and src[j] not in _SPACE and src[j] != ">":
            j += 1
        if j >= n:
            raise TextError(f"Unclosed start tag at byte offset {_byte_offset(src, i)}")
        tag = src[i + 1 : j].lower()
        if tag not in _ALL_TAGS:
            raise TextError(f'Unsupported start tag "{tag}" at byte offset {_byte_offset(src, i)}')
        attrs, i = _parse_attributes(src, j, tag, i)
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise TextError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(src, j)}'
            )
        if tag == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise TextError(
                f'Tag "tg-emoji" must have a numeric "emoji-id" at byte offset '
                f"{_byte_offset(src, j)}"
            )
        stack.append(_Open(tag, attrs, pos16, i))
    if stack:
        raise TextError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _close_tag(op: _Open, end16: int, stack: list[_Open], entities: list[dict[str, Any]]) -> None:
    length = end16 - op.start
    if length <= 0:
        return
    tag = op.tag
    entity: dict[str, Any] = {"offset": op.start, "length": length}
    if tag == "a":
        href = op.attrs.get("href")
        if not href:
            return
        entity["type"] = "text_link"
        entity["url"] = href
    elif tag == "span":
        entity["type"] = "spoiler"
    elif tag == "tg-emoji":
        entity["type"] = "custom_emoji"
        entity["custom_emoji_id"] = op.attrs["emoji-id"]
    elif tag == "blockquote" and "expandable" in op.attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "code":
        language = op.attrs.get("class", "")
        parent = stack[-1] if stack else None
        is_pre_language = parent is not None and parent.tag == "pre" and parent.start == op.start
        if is_pre_language and parent is not None and language.startswith("language-"):
            parent.attrs["_language"] = language[len("language-") :]
            return
        entity["type"] = "code"
    elif tag == "pre":
        entity["type"] = "pre"
        if "_language" in op.attrs:
            entity["language"] = op.attrs["_language"]
    else:
        entity["type"] = _SIMPLE_TAGS[tag]
    entities.append(entity)


def trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Strip leading/trailing whitespace like Telegram does, shifting and clipping entities."""
    stripped = text.strip(_TRIM)
    if len(stripped) == len(text):
        return text, entities
    if not stripped:
        return "", []
    lead = utf16_len(text[: len(text) - len(text.lstrip(_TRIM))])
    size = utf16_len(stripped)
    out = []
    for e in entities:
        start = max(0, e["offset"] - lead)
        end = min(size, e["offset"] - lead + e["length"])
        if end > start:
            out.append({**e, "offset": start, "length": end - start})
    return stripped, out


def prepare_text(
    text: str,
    parse_mode: str | None,
    entities: list[dict[str, Any]] | None = None,
    strict_entities: bool = True,
) -> tuple[str, list[dict[str, Any]]]:
    """Turn a sendMessage text into (displayed text, entities) or raise TextError (a 400)."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        try:
            shown, ents = parse_html(text, strict_entities)
        except TextError as e:
            raise TextError(f"Bad Request: can't parse entities: {e}") from None
    elif mode in ("", "markdown", "markdownv2"):
        # Markdown modes are passed through unparsed (the project uses HTML).
        shown, ents = text, list(entities or [])
    else:
        raise TextError("Bad Request: unsupported parse_mode")
    shown, ents = trim(shown, ents)
    if not shown:
        raise TextError("Bad Request: message text is empty")
    if utf16_len(shown) > MAX_TEXT_UTF16:
        raise TextError("Bad Request: message is too long")
    return shown, ents


def command_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram gives a user's message: a leading `/command` is a bot_command."""
    if not text.startswith("/"):
        return []
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
