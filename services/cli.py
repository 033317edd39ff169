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

from shared.settings import DEFAULT_DATABASE_URL

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

Configuration comes from the environment: RABBITMQ_URL, DATABASE_URL, TELEGRAM_BOT_TOKEN,
TELEGRAM_API_BASE, JWT_SECRET, ... (see README.md, "Configuration").
"""


def _migrate(_: argparse.Namespace) -> int:
    from shared.db import migrate, redact

    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    created = migrate(url)
    print(f"{'created and ' if created else ''}migrated {redact(url)} to the latest schema")
    return 0


def _service(module: str) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        import importlib

        importlib.import_module(f"services.{module}.main").run()
        return 0

    return run


def _dev(args: argparse.Namespace) -> int:
    """Run migrate, the stand-in (when no bot token) and the three services; stop all on Ctrl-C."""
    env = dict(os.environ)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sns-telegram` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
