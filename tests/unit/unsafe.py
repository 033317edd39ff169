"""What must never reach a terminal or a log line raw, and text full of it (for property tests)."""

from __future__ import annotations

from hypothesis import strategies as st

C0 = {chr(c) for c in range(0x20)}
C1 = {chr(c) for c in range(0x80, 0xA0)}
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SEPARATORS = {"\u2028", "\u2029"}
UNSAFE = frozenset(C0 | {"\x7f"} | C1 | BIDI | SEPARATORS)
"""Controls (C0, DEL, C1), bidirectional controls, line and paragraph separators."""

PAYLOADS = [
    "\x1b[2J\x1b[H",  # clear the screen, cursor home
    "\x1b]8;;https://evil.example\x07",  # OSC 8 hyperlink
    "\x9b31m",  # 8-bit CSI
    "\r",
    "\n",
    "\u202e",
    "[link=https://evil.example]click[/link]",
    "[/]",
    "[bold red]",
    "\ud800",
]


def hostile_text(max_size: int = 200) -> st.SearchStrategy[str]:
    """Any unicode (lone surrogates included), with controls, bidi characters and terminal or
    rich markup payloads mixed in often."""
    return st.lists(
        st.one_of(
            st.text(st.characters(exclude_categories=()), max_size=20),
            st.sampled_from(sorted(UNSAFE)),
            st.sampled_from(PAYLOADS),
        ),
        max_size=max(1, max_size // 10),
    ).map("".join)


def raw_unsafe(output: str, *, allow: str = "") -> list[str]:
    """The unsafe characters (and lone surrogates) in `output`, except those in `allow`."""
    return [c for c in output if (c in UNSAFE or "\ud800" <= c <= "\udfff") and c not in allow]
