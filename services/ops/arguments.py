"""What every `sns-telegram` subcommand is made of: `command` (a subcommand and the function it
runs), the `count` argument type and the broker the operations commands talk to."""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Callable

from shared.settings import DEFAULT_RABBITMQ_URL

Action = Callable[[argparse.Namespace], int]
"""What a subcommand runs: its parsed arguments in, the exit status out."""


def command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Action | None,
    *,
    help: str | None = None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """The subcommand `name` of `sub`, running `func` (None: it has subcommands of its own).

    Without `help`, `func`'s docstring says it: its first paragraph is the one-line help of
    `sns-telegram --help`, the rest the description of `sns-telegram NAME --help`.
    """
    if help is None:
        first, _, rest = inspect.cleandoc(func.__doc__ or "").partition("\n\n")
        help, description = " ".join(first.split()), " ".join(rest.split()) or None
    parser = sub.add_parser(name, help=help, description=description)
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def rabbitmq_url() -> str:
    """The broker every operations command talks to: RABBITMQ_URL, or the local default."""
    return os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)


def count(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value
