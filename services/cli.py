"""`sns-telegram`: one command line for every service and operation.

Every subcommand reads its configuration from the environment variables of DESIGN.md section 3.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from shared.settings import DEFAULT_DATABASE_URL, DEFAULT_RABBITMQ_URL

if TYPE_CHECKING:
    from services.ops.letters import Selection

DESCRIPTION = """\
Telegram notifications for the SNS automation platform.

Services (run one per process; scale by running more replicas):
  notifier    consume sns.events, render the messages, send them to Telegram
  linker      the account-linking REST API (port LINKER_PORT, default 8000) and the bot's updates
  scheduler   emit the daily_summary trigger per user per day; admin API (SCHEDULER_PORT, 8001)

Operations:
  migrate     create the database if missing and upgrade it to the latest schema
  dev         everything on one machine: migrate, the three services, and the local Telegram
              stand-in (http://127.0.0.1:8081) when TELEGRAM_BOT_TOKEN is unset
  dlq         the dead-letter queues: list, show, replay (after a fix) or purge their messages
  publish     publish one event on sns.events by hand (the type's sample data unless --data)
  rotate-keys re-encrypt stored chat ids under the newest CHAT_ID_ENCRYPTION_KEY key

Configuration comes from the environment: RABBITMQ_URL, DATABASE_URL, TELEGRAM_BOT_TOKEN,
TELEGRAM_API_BASE, JWT_SECRET, ... (see README.md, "Configuration").
"""


def _say(text: str, *, error: bool = False) -> None:
    """Print one line of text that may quote outside input: redacted, controls escaped."""
    from services.common.safe_text import for_terminal

    print(for_terminal(text), file=sys.stderr if error else sys.stdout)


def _migrate(_: argparse.Namespace) -> int:
    from psycopg import Error as DatabaseError
    from sqlalchemy.exc import SQLAlchemyError

    from shared.db import migrate

    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    try:
        created = migrate(url)
    except (DatabaseError, SQLAlchemyError, OSError, ValueError) as exc:
        _say(f"error: cannot migrate {url}: {type(exc).__name__}: {exc}", error=True)
        return 1
    _say(f"{'created and ' if created else ''}migrated {url} to the latest schema")
    return 0


def _rotate_keys(_: argparse.Namespace) -> int:
    from services.linker.crypto import ChatIdCipher, ChatIdError
    from services.linker.rotate import rotate_chat_ids
    from shared.settings import BaseServiceSettings, ConfigurationError

    try:
        settings = BaseServiceSettings()
        report = rotate_chat_ids(
            settings.database_url.get_secret_value(), ChatIdCipher(settings.encryption_keys())
        )
    except (ChatIdError, ConfigurationError) as exc:
        _say(f"sns-telegram rotate-keys: {exc}", error=True)
        return 2
    print(report)
    if report.unreadable:
        print("some chat ids need a key that is not configured: keep it listed", file=sys.stderr)
        return 1
    return 0


def _rabbitmq_url() -> str:
    return os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)


def _dlq_selection(args: argparse.Namespace) -> Selection:
    from services.ops.letters import Selection

    return Selection(
        ids=frozenset(args.id or ()),
        reason=args.reason,
        only_valid=getattr(args, "only_valid", False),
    )


def _dlq_list(args: argparse.Namespace) -> int:
    from services.ops.dlq_cli import run_list

    return run_list(_rabbitmq_url(), args.queue, limit=args.limit)


def _dlq_show(args: argparse.Namespace) -> int:
    from services.ops.dlq_cli import run_show

    return run_show(_rabbitmq_url(), args.queue, args.key)


def _dlq_replay(args: argparse.Namespace) -> int:
    from services.ops.dlq_cli import run_replay

    return run_replay(
        _rabbitmq_url(),
        args.queue,
        _dlq_selection(args),
        limit=args.limit,
        dry_run=args.dry_run,
    )


def _dlq_purge(args: argparse.Namespace) -> int:
    from services.ops.dlq_cli import run_purge

    return run_purge(_rabbitmq_url(), args.queue, _dlq_selection(args), yes=args.yes)


def _publish(args: argparse.Namespace) -> int:
    """Build the event (exit 2 when invalid), publish it with confirms, print its id."""
    import asyncio

    from services.ops.amqp import OpsError
    from services.ops.publish import InvalidInput, build_event, parse_data, publish

    try:
        data = parse_data(args.data, args.data_file)
        event = build_event(
            args.type,
            args.user,
            data,
            event_id=args.event_id,
            occurred_at=args.occurred_at,
        )
    except InvalidInput as exc:
        _say(f"invalid event: {exc}", error=True)
        return 2
    try:
        asyncio.run(publish(_rabbitmq_url(), event))
    except OpsError as exc:
        _say(f"error: {exc}", error=True)
        return 1
    _say(f"published {event.type.value} for user {event.user_id}", error=True)
    print(event.event_id)
    return 0


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _add_dlq_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from services.ops.letters import DEAD_LETTER_QUEUES
    from shared.contract import NOTIFIER_DLQ

    dlq = sub.add_parser(
        "dlq",
        help="inspect, replay or purge a dead-letter queue",
        description=(
            "Messages are read with basic.get and held unacknowledged until the command ends, "
            "then requeued in order: while it runs they are invisible to others. See "
            "docs/operations.md, 'Dead letters'."
        ),
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help)
        parser.add_argument(
            "--queue",
            default=NOTIFIER_DLQ,
            choices=DEAD_LETTER_QUEUES,
            help=f"the dead-letter queue (default {NOTIFIER_DLQ})",
        )
        return parser

    listing = action("list", "a table of the messages, left in the queue")
    listing.add_argument(
        "--limit", type=_count, default=100, help="show the first N messages (default 100)"
    )
    listing.set_defaults(func=_dlq_list)

    show = action("show", "one message in full (headers, pretty JSON body), left in the queue")
    show.add_argument("key", metavar="ID", help="event id (or a unique prefix) or position")
    show.set_defaults(func=_dlq_show)

    replay = action(
        "replay",
        "re-publish messages to sns.events with their original routing key; each leaves the "
        "DLQ only once the broker confirmed it",
    )
    replay.add_argument(
        "--id", action="append", metavar="ID", help="only this event id (repeatable)"
    )
    replay.add_argument("--reason", help="only messages dead-lettered for this reason")
    replay.add_argument("--limit", type=_count, help="replay at most N messages")
    replay.add_argument(
        "--only-valid", action="store_true", help="skip messages that are not valid events"
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="show what would be replayed; change nothing"
    )
    replay.set_defaults(func=_dlq_replay)

    purge = action("purge", "delete messages for good (asks first unless --yes)")
    purge.add_argument(
        "--id", action="append", metavar="ID", help="only this event id (repeatable)"
    )
    purge.add_argument("--reason", help="only messages dead-lettered for this reason")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(func=_dlq_purge)


def _add_publish_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from shared.contract import EventType

    publish = sub.add_parser(
        "publish",
        help="publish one event on sns.events by hand and print its event id",
        description=(
            "Build a contract event, publish it with publisher confirms (an event no queue "
            "receives is an error) and print its event id. Without --data the type's sample "
            "data from the specification is used."
        ),
    )
    types = [t.value for t in EventType]
    publish.add_argument("type", choices=types, metavar="TYPE", help=f"one of {', '.join(types)}")
    publish.add_argument("--user", required=True, help="the platform user id")
    data = publish.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="JSON", help="the event's data as a JSON object")
    data.add_argument("--data-file", metavar="FILE", help="read the data JSON from FILE")
    publish.add_argument("--event-id", metavar="UUID", help="default: a new random UUID")
    publish.add_argument(
        "--occurred-at", metavar="ISO", help="ISO 8601 with a time zone (default: now)"
    )
    publish.set_defaults(func=_publish)


def _service(module: str) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        import importlib

        from shared.settings import ConfigurationError

        try:
            importlib.import_module(f"services.{module}.main").run()
        except ConfigurationError as exc:
            # A bad or missing variable is one line naming it, never a traceback.
            print(f"{module}: configuration error: {exc}", file=sys.stderr)
            return 1
        return 0

    return run


def _dev(args: argparse.Namespace) -> int:
    """Run migrate, the stand-in (when no bot token) and the three services; stop all on Ctrl-C."""
    env = dict(os.environ)
    # A developer machine: development placeholders below, the stand-in. Said explicitly because
    # the services default to production (and production refuses these placeholders).
    env["APP_ENV"] = "development"
    env.setdefault("LOG_FORMAT", "console")
    env.setdefault("JWT_SECRET", "dev-only-jwt-secret-change-me-0123456789")
    children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(name: str, argv: list[str]) -> None:
        print(f"starting {name}: {' '.join(argv)}", flush=True)
        children.append((name, subprocess.Popen([sys.executable, *argv], env=env)))  # noqa: S603

    if not env.get("TELEGRAM_BOT_TOKEN"):
        env["TELEGRAM_API_BASE"] = f"http://127.0.0.1:{args.standin_port}"
        env.setdefault("TELEGRAM_BOT_USERNAME", "piwpiwtelegrambot")
        start("telegram stand-in", ["-m", "services.standin", "--port", str(args.standin_port)])
    if subprocess.call([sys.executable, "-m", "services.cli", "migrate"], env=env) != 0:
        _stop(children)
        return 1
    for name in ("notifier", "linker", "scheduler"):
        start(name, ["-m", "services.cli", name])
    if not env.get("TELEGRAM_BOT_TOKEN"):
        print(f"\nTelegram stand-in inbox: http://127.0.0.1:{args.standin_port}/", flush=True)
    print(f"linker API docs: http://127.0.0.1:{env.get('LINKER_PORT', '8000')}/docs\n", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while True:
            for name, child in children:
                if child.poll() is not None:
                    print(f"{name} exited with {child.returncode}; stopping the rest", flush=True)
                    _stop(children)
                    return child.returncode or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        _stop(children)
        return 0


def _stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for _, child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `sns-telegram` (also used by tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="sns-telegram",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("migrate", help="create the database if missing, then upgrade it").set_defaults(
        func=_migrate
    )
    sub.add_parser(
        "notifier",
        help="consume events and send Telegram messages (port NOTIFIER_PORT: health, metrics)",
    ).set_defaults(func=_service("notifier"))
    sub.add_parser(
        "linker", help="account-linking REST API and bot updates (port LINKER_PORT)"
    ).set_defaults(func=_service("linker"))
    sub.add_parser(
        "scheduler", help="daily summary triggers and the scheduler admin API (port SCHEDULER_PORT)"
    ).set_defaults(func=_service("scheduler"))
    dev = sub.add_parser(
        "dev", help="migrate + all three services + the Telegram stand-in, for a developer machine"
    )
    dev.add_argument("--standin-port", type=int, default=8081, help="stand-in port (default 8081)")
    dev.set_defaults(func=_dev)
    _add_dlq_parser(sub)
    _add_publish_parser(sub)
    sub.add_parser(
        "rotate-keys",
        help="re-encrypt stored chat ids under the newest CHAT_ID_ENCRYPTION_KEY key",
    ).set_defaults(func=_rotate_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sns-telegram` console script."""
    from services.common.safe_text import remember_secrets

    remember_secrets(os.environ)  # whatever a command prints, these values never show
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
