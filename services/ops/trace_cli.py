"""The `sns-telegram trace` command line: its arguments, checked, then `services/ops/trace.py`.
Light on imports: every command of `sns-telegram` builds this parser."""

from __future__ import annotations

import argparse
import os
import sys
import uuid

from services.common.safe_text import for_terminal
from shared.settings import DEFAULT_DATABASE_URL, DEFAULT_RABBITMQ_URL

MAX_LAST = 100


def add_trace_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `trace` to the subcommands."""
    trace = sub.add_parser(
        "trace",
        help="the whole life of one event, or a user's last events (support's first look)",
        description="From the database's delivery log and the notifier's dead-letter queue "
        "(read and put back in order, as `dlq list` does). Output escaped for terminals.",
    )
    trace.add_argument("event_id", nargs="?", metavar="EVENT_ID")
    trace.add_argument("--user", metavar="USER_ID", help="list this user's last events")
    trace.add_argument("--last", type=int, default=20, metavar="N", help="with --user (20)")
    trace.add_argument("--no-dlq", action="store_true", help="do not look in the DLQ")
    trace.add_argument("--json", action="store_true", help="print JSON (the admin API's shape)")
    trace.set_defaults(func=run)


def _refuse(text: str) -> int:
    print(for_terminal(text), file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """`trace EVENT_ID` or `trace --user ID`: exit 2 on a bad argument, 1 if nothing is known
    of the event."""
    from services.ops.trace import run_trace, run_user

    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    if (args.event_id is None) == (args.user is None):
        return _refuse("give either an EVENT_ID or --user USER_ID")
    if args.user is not None:
        if not 1 <= args.last <= MAX_LAST or not 0 < len(args.user) <= 128:
            return _refuse(f"--user takes 1-128 characters and --last 1-{MAX_LAST}")
        return run_user(database_url, args.user, args.last, as_json=args.json)
    try:
        event_id = uuid.UUID(args.event_id)
    except ValueError:
        return _refuse(f"not an event id (a UUID): {args.event_id}")
    rabbitmq_url = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    return run_trace(database_url, rabbitmq_url, event_id, dlq=not args.no_dlq, as_json=args.json)
