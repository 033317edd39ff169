"""`sns-telegram dlq`: its arguments and the action each one runs (`dlq_cli.py` prints them).

Kept apart from `services/cli.py`, which only assembles the subcommands; the heavy modules are
imported when an action runs, so `sns-telegram --help` stays fast.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from services.ops.arguments import command, count, rabbitmq_url

if TYPE_CHECKING:
    from services.ops.arguments import Action
    from services.ops.letters import Selection


def _dlq_selection(args: argparse.Namespace) -> Selection:
    from services.ops.letters import Selection

    return Selection(
        ids=frozenset(args.id or ()),
        reason=args.reason,
        only_valid=getattr(args, "only_valid", False),
    )


def _dlq_list(args: argparse.Namespace) -> int:
    from services.ops.dlq_cli import run_list

    return run_list(rabbitmq_url(), args.queue, limit=args.limit)


def _dlq_show(args: argparse.Namespace) -> int:
    from services.ops.dlq_cli import run_show

    return run_show(rabbitmq_url(), args.queue, args.key)


def _dlq_replay(args: argparse.Namespace) -> int:
    from services.ops.dlq_cli import run_replay

    return run_replay(
        rabbitmq_url(),
        args.queue,
        _dlq_selection(args),
        limit=args.limit,
        dry_run=args.dry_run,
    )


def _dlq_purge(args: argparse.Namespace) -> int:
    from services.ops.dlq_cli import run_purge

    return run_purge(rabbitmq_url(), args.queue, _dlq_selection(args), yes=args.yes)


def add_dlq_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from services.ops.letters import DEAD_LETTER_QUEUES
    from shared.contract import NOTIFIER_DLQ

    dlq = command(
        sub,
        "dlq",
        None,
        help="inspect, replay or purge a dead-letter queue",
        description=(
            "Messages are read with basic.get and held unacknowledged until the command ends, "
            "then requeued in order: while it runs they are invisible to others. See "
            "docs/operations.md, 'Dead letters'."
        ),
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    def action(name: str, func: Action, help: str) -> argparse.ArgumentParser:
        parser = command(actions, name, func, help=help, description=help)
        parser.add_argument(
            "--queue",
            default=NOTIFIER_DLQ,
            choices=DEAD_LETTER_QUEUES,
            help=f"the dead-letter queue (default {NOTIFIER_DLQ})",
        )
        return parser

    listing = action("list", _dlq_list, "a table of the messages, left in the queue")
    listing.add_argument(
        "--limit", type=count, default=100, help="show the first N messages (default 100)"
    )

    show = action(
        "show", _dlq_show, "one message in full (headers, pretty JSON body), left in the queue"
    )
    show.add_argument("key", metavar="ID", help="event id (or a unique prefix) or position")

    replay = action(
        "replay",
        _dlq_replay,
        "re-publish messages to sns.events with their original routing key; each leaves the "
        "DLQ only once the broker confirmed it",
    )
    replay.add_argument(
        "--id", action="append", metavar="ID", help="only this event id (repeatable)"
    )
    replay.add_argument("--reason", help="only messages dead-lettered for this reason")
    replay.add_argument("--limit", type=count, help="replay at most N messages")
    replay.add_argument(
        "--only-valid", action="store_true", help="skip messages that are not valid events"
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="show what would be replayed; change nothing"
    )

    purge = action("purge", _dlq_purge, "delete messages for good (asks first unless --yes)")
    purge.add_argument(
        "--id", action="append", metavar="ID", help="only this event id (repeatable)"
    )
    purge.add_argument("--reason", help="only messages dead-lettered for this reason")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
