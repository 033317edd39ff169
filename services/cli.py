"""`sns-telegram`: one command line for every service and operation.

A subcommand's help is its function's docstring (`services/ops/arguments.py`, `command`).
Every subcommand reads its configuration from the environment variables that
deploy/.env.example lists.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
from collections.abc import Callable, Sequence

from services.ops.arguments import command, count, rabbitmq_url
from services.ops.dlq_commands import add_dlq_parser
from shared.settings import DEFAULT_DATABASE_URL

DESCRIPTION = """\
Telegram notifications for the SNS automation platform.

Services (run one per process; scale by running more replicas):
  notifier    consume sns.events, render the messages, send them to Telegram
  linker      the account-linking REST API (port LINKER_PORT, default 8000) and the bot's updates
  scheduler   emit the daily_summary trigger per user per day; admin API (SCHEDULER_PORT, 8001)

Operations:
  migrate     create the database if missing and upgrade it to the latest schema
  dev         everything on one machine: PostgreSQL and RabbitMQ (with Docker if need be), the
              Telegram stand-in (http://127.0.0.1:8081) when TELEGRAM_BOT_TOKEN is unset, one
              migration, the three services; --demo adds a linked chat with sample messages
  dev-token   a JWT the development setup accepts (--user ID [--admin]); refused in production
  dlq         the dead-letter queues: list, show, replay (after a fix) or purge their messages
  publish     publish one event on sns.events by hand (the type's sample data unless --data)
  trace       the whole life of one event (EVENT_ID), or a user's last events (--user ID)
  rotate-keys re-encrypt stored chat ids under the newest CHAT_ID_ENCRYPTION_KEY key
  prune       delete rows past their retention (RETENTION_*), as the scheduler does every
              PRUNE_INTERVAL_MINUTES; --dry-run only says what would go, per table
  broker-permissions
              RabbitMQ permissions: platform publishers may write sns.events only, never the
              internal exchange where the notifier tells the linker about chats

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
    from services.common.chat_ids import ChatIdCipher, ChatIdError
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


def _prune(args: argparse.Namespace) -> int:
    """delete rows past their retention (RETENTION_*); --dry-run counts them only

    Delete, in batches of PRUNE_BATCH_SIZE, every row past its retention (RETENTION_* variables;
    docs/operations.md, 'Data retention'), as the scheduler does every PRUNE_INTERVAL_MINUTES,
    and print rows and bytes per table. Safe beside the running services.
    """
    from services.scheduler.prune_cli import run

    return run(dry_run=args.dry_run, say=_say)


def _broker_permissions(args: argparse.Namespace) -> int:
    """set RabbitMQ permissions: platform publishers write sns.events only

    Give RABBITMQ_URL's account everything in its vhost and each --publisher account (default
    RABBITMQ_PUBLISHER_USER, platform) sns.events only (created with RABBITMQ_PUBLISHER_PASSWORD
    if missing), through the management API at RABBITMQ_MANAGEMENT_URL (default: port 15672 of
    RABBITMQ_URL's host).
    """
    from services.ops.amqp import OpsError
    from services.ops.permissions import Management, apply
    from services.ops.settings import BrokerPermissionsSettings
    from shared.settings import ConfigurationError

    try:
        settings = BrokerPermissionsSettings()
        settings.validate_for_production()
    except ConfigurationError as exc:
        _say(f"sns-telegram broker-permissions: {exc}", error=True)
        return 2
    parsed = urllib.parse.urlsplit(settings.rabbitmq_url.get_secret_value())
    vhost = urllib.parse.unquote(parsed.path[1:]) if len(parsed.path) > 1 else "/"
    user = urllib.parse.unquote(parsed.username or "guest")
    password = urllib.parse.unquote(parsed.password or "guest")
    base = settings.rabbitmq_management_url or f"http://{parsed.hostname}:15672"
    secret = settings.rabbitmq_publisher_password
    publishers = args.publisher or [settings.rabbitmq_publisher_user]
    try:
        applied = apply(
            Management(base, user, password),
            vhost,
            user,
            dict.fromkeys(publishers, secret.get_secret_value() if secret else None),
        )
    except OpsError as exc:
        _say(f"sns-telegram broker-permissions: {exc}", error=True)
        return 1
    for permission in applied:
        _say(
            f"vhost {vhost!r}: {permission.user}: configure {permission.configure!r}, "
            f"write {permission.write!r}, read {permission.read!r}"
        )
    return 0


def _publish(args: argparse.Namespace) -> int:
    """publish one event on sns.events by hand and print its event id

    Build a contract event, publish it with publisher confirms (an event no queue receives is an
    error) and print its event id. Without --data the type's sample data from the specification
    is used.
    """
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
        asyncio.run(publish(rabbitmq_url(), event))
    except OpsError as exc:
        _say(f"error: {exc}", error=True)
        return 1
    _say(f"published {event.type.value} for user {event.user_id}", error=True)
    print(event.event_id)
    return 0


def _add_publish_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from shared.contract import EventType

    publish = command(sub, "publish", _publish)
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
    from services.ops.trace_cli import add_trace_parser

    add_trace_parser(sub)


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
    from services.dev.runner import run

    return run(args)


def _dev_token(args: argparse.Namespace) -> int:
    """print a JWT the development setup accepts (APP_ENV=development only)

    Print a JWT signed with JWT_SECRET (or the development secret of `sns-telegram dev`), with
    JWT_AUDIENCE, or ADMIN_JWT_AUDIENCE and the admin role for --admin, and JWT_ISSUER when they
    are set. Refused unless APP_ENV=development.
    """
    from services.dev.tokens import Refused, mint

    try:
        print(mint(os.environ, args.user, admin=args.admin, minutes=args.minutes))
    except Refused as exc:
        _say(f"sns-telegram dev-token: refused: {exc}", error=True)
        return 2
    return 0


def _add_dev_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = command(
        sub,
        "dev",
        _dev,
        help="servers, the Telegram stand-in, one migration and the three services, for a "
        "developer machine; says `ready` once everything answers",
    )
    dev.add_argument("--standin-port", type=int, default=8081, help="stand-in port (default 8081)")
    dev.add_argument(
        "--ready-timeout",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="stop with an error naming the service not ready by then (default 180)",
    )
    dev.add_argument(
        "--demo",
        action="store_true",
        help="once ready, link chat 7 in the stand-in to user `demo` and publish one message of "
        "each type and a daily report",
    )
    token = command(sub, "dev-token", _dev_token)
    token.add_argument("--user", required=True, help="the platform user id (the `sub` claim)")
    token.add_argument("--admin", action="store_true", help="an admin token (/api/admin/...)")
    token.add_argument("--minutes", type=count, default=60, help="lifetime in minutes (default 60)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `sns-telegram` (also used by tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="sns-telegram",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command(sub, "migrate", _migrate, help="create the database if missing, then upgrade it")
    command(
        sub,
        "notifier",
        _service("notifier"),
        help="consume events and send Telegram messages (port NOTIFIER_PORT: health, metrics)",
    )
    command(
        sub,
        "linker",
        _service("linker"),
        help="account-linking REST API and bot updates (port LINKER_PORT)",
    )
    command(
        sub,
        "scheduler",
        _service("scheduler"),
        help="daily summary triggers and the scheduler admin API (port SCHEDULER_PORT)",
    )
    _add_dev_parsers(sub)
    add_dlq_parser(sub)
    _add_publish_parser(sub)
    command(
        sub,
        "rotate-keys",
        _rotate_keys,
        help="re-encrypt stored chat ids under the newest CHAT_ID_ENCRYPTION_KEY key",
    )
    pruning = command(sub, "prune", _prune)
    pruning.add_argument(
        "--dry-run", action="store_true", help="count what would go, per table; delete nothing"
    )
    permissions = command(sub, "broker-permissions", _broker_permissions)
    permissions.add_argument(
        "--publisher", action="append", default=[], metavar="USER", help="a publisher account"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sns-telegram` console script."""
    from services.common.safe_text import remember_secrets

    remember_secrets(os.environ)  # whatever a command prints, these values never show
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
