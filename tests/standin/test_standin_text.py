"""Telegram HTML parsing and text rules of the stand-in (pure functions)."""

from __future__ import annotations

import html

import pytest

from services.standin.text import TextError, parse_html, prepare_text, utf16_len

pytestmark = pytest.mark.unit


def test_plain_text_is_kept() -> None:
    assert prepare_text("hello\nworld", None) == ("hello\nworld", [])


def test_html_tags_become_entities() -> None:
    text, entities = prepare_text(
        '<b>bold</b> <i>it</i> <a href="https://e.com/?a=1&amp;b=2">link</a>', "HTML"
    )
    assert text == "bold it link"
    assert entities == [
        {"offset": 0, "length": 4, "type": "bold"},
        {"offset": 5, "length": 2, "type": "italic"},
        {"offset": 8, "length": 4, "type": "text_link", "url": "https://e.com/?a=1&b=2"},
    ]


def test_all_supported_tags_parse() -> None:
    src = (
        "<b>a</b><strong>a</strong><i>a</i><em>a</em><u>a</u><ins>a</ins><s>a</s>"
        '<strike>a</strike><del>a</del><span class="tg-spoiler">a</span><tg-spoiler>a</tg-spoiler>'
        '<code>a</code><pre>a</pre><pre><code class="language-python">a</code></pre>'
        '<blockquote>a</blockquote><blockquote expandable>a</blockquote><tg-emoji emoji-id="5">a</tg-emoji>'
    )
    text, entities = parse_html(src)
    assert text == "a" * 17
    types = [e["type"] for e in entities]
    assert types == [
        "bold", "bold", "italic", "italic", "underline", "underline", "strikethrough",
        "strikethrough", "strikethrough", "spoiler", "spoiler", "code", "pre", "pre",
        "blockquote", "expandable_blockquote", "custom_emoji",
    ]  # fmt: skip
    assert entities[13]["language"] == "python"


def test_escaped_content_round_trips() -> None:
    user_content = "<b>&</b> <script>alert('x')</script> & \"q\""
    text, entities = prepare_text(html.escape(user_content), "HTML")
    assert text == user_content
    assert entities == []


def test_numeric_entities() -> None:
    assert parse_html("&#60;&#x3E;&#128512;")[0] == "<>😀"


@pytest.mark.parametrize(
    ("src", "fragment"),
    [
        ("<foo>x</foo>", 'Unsupported start tag "foo"'),
        ("<br>", 'Unsupported start tag "br"'),
        ("a < b", 'Unsupported start tag ""'),
        ("a <b", "Unclosed start tag"),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag"),
        ("<span>x</span>", 'must have class "tg-spoiler"'),
        ("fish & chips", "Unsupported HTML entity"),
        ("&nbsp;", "Unsupported HTML entity"),
    ],
)
def test_bad_html_is_rejected(src: str, fragment: str) -> None:
    with pytest.raises(TextError) as info:
        prepare_text(src, "HTML")
    assert str(info.value).startswith("Bad Request: can't parse entities: ")
    assert fragment in str(info.value)


def test_bare_ampersand_can_be_lenient_like_real_telegram() -> None:
    assert prepare_text("fish & chips", "HTML", strict_entities=False)[0] == "fish & chips"


def test_html_chars_are_plain_without_parse_mode() -> None:
    assert prepare_text("a < b & <i>", None)[0] == "a < b & <i>"


@pytest.mark.parametrize("src", ["", "   \n ", "<b> </b>", "<i></i>"])
def test_empty_after_parsing(src: str) -> None:
    with pytest.raises(TextError, match=r"^Bad Request: message text is empty$"):
        prepare_text(src, "HTML")


def test_length_counts_utf16_after_parsing() -> None:
    assert prepare_text("<b>" + "x" * 4096 + "</b>", "HTML")[0] == "x" * 4096
    with pytest.raises(TextError, match=r"^Bad Request: message is too long$"):
        prepare_text("x" * 4097, None)
    emoji = "😀" * 2048  # 4096 UTF-16 code units
    assert utf16_len(emoji) == 4096
    assert prepare_text(emoji, None)[0] == emoji
    with pytest.raises(TextError, match="too long"):
        prepare_text(emoji + "x", None)


def test_entity_offsets_are_utf16() -> None:
    text, entities = prepare_text("😀 <b>x</b>", "HTML")
    assert text == "😀 x"
    assert entities == [{"offset": 3, "length": 1, "type": "bold"}]


def test_surrounding_whitespace_is_trimmed_like_telegram() -> None:
    text, entities = prepare_text("\n  <b>hi</b> there \n", "HTML")
    assert text == "hi there"
    assert entities == [{"offset": 0, "length": 2, "type": "bold"}]


def test_unknown_parse_mode() -> None:
    with pytest.raises(TextError, match="unsupported parse_mode"):
        prepare_text("x", "BBCode")
