"""Digests under bursts (`NOTIFIER_DIGEST_MIN`): when enough messages wait for one chat, the one
whose turn it is carries the others that arrived within the window and fit in one message. Pure:
which messages fold is decided from the chat's line as it stands."""

from __future__ import annotations

from collections.abc import Iterable

from services.notifier.render import digest_fits, render_digest
from services.notifier.telegram import Options
from services.notifier.work import Send


def foldable(send: Send, behind: Iterable[object], minimum: int, window: float) -> list[Send]:
    """The messages queued behind `send` (in its chat's line, in order) that it should carry as
    a digest, or none: at least `minimum` in all, each arrived within `window` seconds of
    `send`, the whole fitting one message. An edit in the line, or a message another digest
    took, is never jumped."""
    texts = [send.text]
    taken: list[Send] = []
    for other in behind:
        if not isinstance(other, Send) or other.absorbed:
            break  # an edit (or a message another digest took) keeps its place in order
        if other.started - send.started > window:
            break
        if not digest_fits([*texts, other.text], send.language):
            break
        texts.append(other.text)
        taken.append(other)
    return taken if 1 + len(taken) >= minimum else []


def fold(send: Send, taken: list[Send]) -> None:
    """Make `send` the digest of itself and `taken` (which have nothing left to send)."""
    for other in taken:
        other.absorbed = True
    send.folded = taken
    send.text = render_digest([send.text, *(f.text for f in taken)], send.language)
    send.buttons = None  # buttons belong to single notifications
    send.options = fold_options([send.options, *(f.options for f in taken)])


def fold_options(each: list[Options]) -> Options:
    """The options of one message carrying several: silent only when every one was, no link
    preview (it would show one of several posts), in the topic of the first (one chat, one link)."""
    return Options(silent=all(o.silent for o in each), thread=each[0].thread)
