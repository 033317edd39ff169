"""What `sns-telegram dlq` prints, and its commands: list, show, replay, purge.

Everything printed here that a message, the broker or an exception supplied is outside text: it
goes through `shown()` (secrets redacted, control and bidi characters escaped, never parsed as
rich markup) so a dead letter cannot rewrite the operator's screen or hide what it is.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

import aio_pika
from rich import box
from rich.console import Console
from rich.highlighter import JSONHighlighter
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.prompt import Confirm
from rich.table import Table
from rich.text import Text

from services.common.safe_text import for_terminal, json_text
from services.ops.amqp import OpsError
from services.ops.dlq import Listing, ReplayResult, browse, find, purge, replay
from services.ops.letters import DeadLetter, Selection
from shared.contract import exchange_of

ERROR_WIDTH = 60


def make_console(*, stderr: bool = False) -> Console:
    """A console; when not on a terminal, wide enough that ids are never cut. Plain strings
    are not read as markup nor highlighted: only `Text` built here carries style."""
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    return Console(stderr=stderr, width=wide, highlight=False, markup=False)


def shown(text: object, style: str = "") -> Text:
    """Outside text as printed: redacted, controls escaped, literal (no markup)."""
    return Text(for_terminal(str(text)), style=style)


def _say(console: Console, text: str, style: str = "") -> None:
    console.print(shown(text, style))


def _shorten(text: str, width: int = ERROR_WIDTH) -> str:
    flat = for_terminal(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def letters_table(
    letters: Iterable[DeadLetter], *, title: str | None = None, targets: bool = False
) -> Table:
    """The `dlq list` table (with `targets`: the routing key each would be replayed with)."""
    table = Table(
        title=shown(title) if title is not None else None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("event id", no_wrap=True, min_width=36)
    table.add_column("type", no_wrap=True)
    table.add_column("reason", no_wrap=True)
    table.add_column("error", ratio=1, min_width=16)
    table.add_column("dead-lettered at", no_wrap=True, min_width=20)
    table.add_column("deliveries", justify="right", no_wrap=True)
    if targets:
        table.add_column("replays to", no_wrap=True)
    for letter in letters:
        deliveries = letter.deliveries
        cells: list[str | Text] = [
            str(letter.position),
            shown(letter.event_id or "-"),
            shown(letter.event_type or "-"),
            shown(letter.reason),
            Text(_shorten(letter.error) or "-"),
            _when(letter.dead_lettered_at),
            "-" if deliveries is None else str(deliveries),
        ]
        if targets:
            cells.append(shown(letter.routing_key or "(unknown)"))
        table.add_row(*cells)
    return table


def print_listing(listing: Listing, console: Console) -> None:
    """Print what `dlq list` read."""
    if not listing.letters:
        _say(console, f"{listing.queue} is empty.")
        return
    count = len(listing.letters)
    console.print(
        letters_table(
            listing.letters,
            title=f"{listing.queue}: {listing.total} message(s), showing 1-{count}",
        )
    )
    reasons = Counter(letter.reason for letter in listing.letters)
    _say(console, "by reason: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common()))
    if count < listing.total:
        _say(console, f"({listing.total - count} more: use --limit)")


def _header_value(value: Any) -> Text:
    if isinstance(value, datetime):
        return shown(value.isoformat())
    if isinstance(value, list | dict):
        return Text(json_text(value))
    if isinstance(value, bytes):
        return shown(value.decode("utf-8", "replace"))
    return shown(value)


def body_text(body: bytes) -> Text | None:
    """A JSON body pretty-printed (redacted, every control a JSON escape), None if not JSON."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    text = Text(json_text(parsed, indent=2))
    JSONHighlighter().highlight(text)
    return text


def print_letter(letter: DeadLetter, queue: str, console: Console) -> None:
    """Print one dead letter in full: summary, properties, headers, body."""
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    rows: list[tuple[str, str]] = [
        ("queue", f"{queue} (position {letter.position})"),
        ("event id", letter.event_id or "-"),
        ("type", letter.event_type or "-"),
        ("reason", letter.reason),
        ("error", letter.error or "-"),
        ("dead-lettered at", _when(letter.dead_lettered_at)),
        ("replays to", _target(letter.routing_key)),
        ("deliveries", "-" if letter.deliveries is None else str(letter.deliveries)),
        ("valid event", "yes" if letter.valid else f"no: {letter.problem}"),
    ]
    for name, value in rows:
        summary.add_row(name, shown(value))
    console.print(summary)
    for title, values in (("properties", letter.properties), ("headers", letter.headers)):
        table = Table(title=title, title_justify="left", show_header=False)
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for name, value in values.items():
            table.add_row(shown(name), _header_value(value))
        console.print(table)
    console.print(Text("body", style="bold"))
    body = body_text(letter.body)
    if body is not None:
        console.print(body)
    else:
        console.print(shown(letter.body.decode("utf-8", "replace")))
        console.print(Text("(the body is not valid JSON)", style="yellow"))


def _fail(console: Console, exc: Exception) -> int:
    _say(console, f"error: {exc}", "red")
    return 1


def run_list(
    url: str,
    queue: str,
    *,
    limit: int | None,
    console: Console | None = None,
    errors: Console | None = None,
) -> int:
    """`dlq list`: the table of the first `limit` messages, all left in the queue."""
    console = console or make_console()
    try:
        listing = asyncio.run(browse(url, queue, limit=limit))
    except OpsError as exc:
        return _fail(errors or make_console(stderr=True), exc)
    print_listing(listing, console)
    return 0


def run_show(
    url: str, queue: str, key: str, *, console: Console | None = None, errors: Console | None = None
) -> int:
    """`dlq show`: one message's headers and body, left in the queue."""
    console = console or make_console()
    try:
        letter = asyncio.run(find(url, queue, key))
    except OpsError as exc:
        return _fail(errors or make_console(stderr=True), exc)
    print_letter(letter, queue, console)
    return 0


async def _replay_with_progress(
    url: str,
    queue: str,
    selection: Selection,
    *,
    limit: int | None,
    dry_run: bool,
    console: Console,
) -> ReplayResult:
    columns = (
        TextColumn("replaying {task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(queue, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return await replay(url, queue, selection, limit=limit, dry_run=dry_run, progress=advance)


def run_replay(
    url: str,
    queue: str,
    selection: Selection,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    console: Console | None = None,
    errors: Console | None = None,
) -> int:
    """`dlq replay`: 0 when every selected message was replayed (or would be, with dry_run)."""
    console = console or make_console()
    errors = errors or make_console(stderr=True)
    try:
        result = asyncio.run(
            _replay_with_progress(
                url, queue, selection, limit=limit, dry_run=dry_run, console=console
            )
        )
    except OpsError as exc:
        return _fail(errors, exc)
    except (aio_pika.exceptions.AMQPError, ConnectionError) as exc:
        return _fail(
            errors,
            OpsError(
                f"lost the connection to RabbitMQ: {exc!r}; every message not yet acknowledged "
                "is back in the DLQ (one replayed just now may be replayed again: consumers "
                "deduplicate by event_id)"
            ),
        )
    if dry_run:
        if result.planned:
            console.print(letters_table(result.planned, title="would replay", targets=True))
        _say(
            console,
            f"dry run: would replay {len(result.planned)} of {result.total} message(s) "
            f"({selection.describe()}); nothing was changed",
        )
    else:
        _say(
            console,
            f"replayed {len(result.replayed)} of {result.total} message(s) from {queue} "
            f"({selection.describe()})",
        )
    for letter, why in result.failed:
        _say(
            errors,
            f"left in {queue}: {letter.event_id or letter.position} ({letter.event_type}): {why}",
            "red",
        )
    if result.stopped:
        _say(errors, f"stopped: {result.stopped}", "red")
    return 1 if result.failed else 0


def ask_on_terminal(
    question: str, *, console: Console | None = None, stream: TextIO | None = None
) -> bool:
    """A yes/no question on the terminal (no answer, e.g. no stdin, means no); the question is
    printed literally, never as markup."""
    try:
        return Confirm.ask(
            shown(question),
            console=console or make_console(stderr=True),
            default=False,
            stream=stream,
        )
    except EOFError:
        return False


def run_purge(
    url: str,
    queue: str,
    selection: Selection,
    *,
    yes: bool = False,
    ask: Callable[[str], bool] = ask_on_terminal,
    console: Console | None = None,
    errors: Console | None = None,
) -> int:
    """`dlq purge`: delete the selected messages after a confirmation (or --yes)."""
    console = console or make_console()
    errors = errors or make_console(stderr=True)

    def confirm(count: int, reasons: Counter[str]) -> bool:
        if yes:
            return True
        detail = ", ".join(f"{reason} {n}" for reason, n in reasons.most_common())
        return ask(for_terminal(f"Delete {count} message(s) ({detail}) from {queue} for good?"))

    try:
        result = asyncio.run(purge(url, queue, selection, confirm=confirm))
    except OpsError as exc:
        return _fail(errors, exc)
    matched = sum(result.matched.values())
    if matched == 0:
        _say(
            console,
            f"nothing to delete: no message of {result.total} matches ({selection.describe()})",
        )
        return 0
    if not result.confirmed:
        _say(errors, "aborted: nothing was deleted", "yellow")
        return 1
    _say(console, f"deleted {result.deleted} message(s) from {queue}")
    return 0


def _target(routing_key: str | None) -> str:
    """Where a replay of a letter goes: its routing key's exchange, with that key."""
    if routing_key is None:
        return "(unknown: no original routing key)"
    return f"{exchange_of(routing_key)} with routing key {routing_key}"
