"""CLI: `python -m services.standin --host 127.0.0.1 --port 8081 [--limits]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from services.standin.limits import Limits
from services.standin.server import StandIn, serve
from services.standin.state import DEFAULT_BOT_FIRST_NAME, DEFAULT_BOT_USERNAME, Settings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        prog="python -m services.standin",
        description="Local Telegram Bot API stand-in (tests, benchmarks, development only).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    p.add_argument("--bot-username", default=DEFAULT_BOT_USERNAME)
    p.add_argument("--bot-first-name", default=DEFAULT_BOT_FIRST_NAME)
    p.add_argument(
        "--limits",
        action="store_true",
        help="turn on Telegram's limits (30/s global, 1/s per chat, 20/min per group)",
    )
    p.add_argument("--global-rate", type=int, help="messages per second per bot")
    p.add_argument("--chat-rate", type=int, help="messages per second per chat")
    p.add_argument("--group-rate-per-min", type=int, help="messages per minute per group")
    p.add_argument("--slack", type=float, default=0.02, help="windows are this much shorter (s)")
    p.add_argument("--edit-rate-per-min", type=int, help="edits per minute per group")
    p.add_argument(
        "--one-way-delay-ms",
        type=float,
        default=0.0,
        help="each request waits this long before it is counted, each answer again (RTT = 2x)",
    )
    p.add_argument(
        "--lenient-ampersand",
        action="store_true",
        help="keep a bare '&' in HTML as text like real Telegram (default: reject it)",
    )
    return p.parse_args(argv)


def limits_from_args(args: argparse.Namespace) -> Limits:
    """The Limits the command line asks for (explicit rates override --limits defaults)."""
    limits = Limits.telegram() if args.limits else Limits()
    if args.global_rate is not None:
        limits.global_per_sec = args.global_rate or None
    if args.chat_rate is not None:
        limits.per_chat_per_sec = args.chat_rate or None
    if args.group_rate_per_min is not None:
        limits.per_group_per_min = args.group_rate_per_min or None
    if args.edit_rate_per_min is not None:
        limits.edits_per_group_per_min = args.edit_rate_per_min or None
    limits.slack = args.slack
    limits.one_way_delay = max(0.0, args.one_way_delay_ms) / 1000
    return limits


def _ready(standin: StandIn) -> None:
    limits = standin.state.limits
    mode = "limits " + ("on" if limits.enabled else "off")
    print(
        f"Telegram Bot API stand-in on {standin.base_url} "
        f"(page {standin.base_url}/, control {standin.base_url}/_standin/, "
        f"bot @{standin.state.bot_username}, {mode})",
        flush=True,
    )


async def _main(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
    settings: Settings = {
        "bot_username": args.bot_username,
        "bot_first_name": args.bot_first_name,
        "limits": limits_from_args(args),
        "strict_html_entities": not args.lenient_ampersand,
    }
    with contextlib.suppress(asyncio.CancelledError):
        await serve(args.host, args.port, ready=_ready, **settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in until Ctrl-C or SIGTERM."""
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
