"""`sns-telegram dev --demo` (`make demo`): a linked demo chat in the stand-in showing one message
of each notification type and a daily report, through the real paths.

Once everything is ready: user `demo` asks the linker for a linking token (as the frontend does),
chat 7 sends `/start TOKEN` in the stand-in (as a user does), and then each message type's sample
(`shared.contract.TYPES`) goes out on sns.events through the platform's publisher: a
post_success, a post_failure and an automation_executed, then that day's daily_summary (a
resend, so a second demo on the same day shows one too). It runs beside the services; a failure
is reported and changes nothing else.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import aiohttp

from services.common.publishing import connected
from services.dev.tokens import mint
from shared.contract import MESSAGE_TYPES, Event, EventType, new_event, sample_data

DEMO_USER = "demo"
DEMO_CHAT = 7
NOTIFICATIONS = tuple(t for t in MESSAGE_TYPES if t is not EventType.DAILY_SUMMARY)
"""The platform's notifications, one of each, with their samples; the daily report follows."""


def start_demo(env: Mapping[str, str], standin: str | None, say: Callable[[str], None]) -> None:
    """Run the demo in a thread of its own; report through `say`."""

    def main() -> None:
        try:
            asyncio.run(run_demo(env, standin, say))
        except Exception as exc:  # a demo that fails must not take the services down
            say(f"error: the demo failed: {type(exc).__name__}: {exc}")

    threading.Thread(target=main, name="demo", daemon=True).start()


async def run_demo(env: Mapping[str, str], standin: str | None, say: Callable[[str], None]) -> None:
    """Link the demo chat (unless it is linked already), publish, wait for the messages."""
    from services.standin.client import StandInClient

    if standin is None:
        say("the demo needs the stand-in: unset TELEGRAM_BOT_TOKEN")
        return
    linker = f"http://127.0.0.1:{env.get('LINKER_PORT', '8000')}/api/telegram"
    headers = {"Authorization": f"Bearer {mint(env, DEMO_USER)}"}
    async with (
        aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as api,
        StandInClient(standin) as telegram,
    ):
        async with api.get(f"{linker}/status") as answer:
            status = await answer.json()
        linked = status.get("telegram_enabled") and status.get("telegram_chat_id") == str(DEMO_CHAT)
        if not linked:
            async with api.get(f"{linker}/link-account") as answer:
                answer.raise_for_status()
                token = (await answer.json())["token"]
            before = len(await telegram.bot_messages(DEMO_CHAT))
            await telegram.user_sends(DEMO_CHAT, f"/start {token}")
            await telegram.wait_for_messages(DEMO_CHAT, before + 1, timeout=30)
            say(f"chat {DEMO_CHAT} linked to user {DEMO_USER!r} (/start with a linking token)")
        rabbitmq_url = env["RABBITMQ_URL"]
        today = datetime.now(UTC).date()
        before = len(await telegram.bot_messages(DEMO_CHAT))
        for kind in NOTIFICATIONS:
            await publish(rabbitmq_url, new_event(kind, DEMO_USER, sample_data(kind, today)))
        await telegram.wait_for_messages(DEMO_CHAT, before + len(NOTIFICATIONS), timeout=60)
        summary = {"date": today.isoformat(), "timezone": "UTC", "resend": True}
        await publish(rabbitmq_url, new_event(EventType.DAILY_SUMMARY, DEMO_USER, summary))
        await telegram.wait_for_messages(DEMO_CHAT, before + len(NOTIFICATIONS) + 1, timeout=60)
    say(
        f"published {', '.join(NOTIFICATIONS)} and a daily_summary for user {DEMO_USER!r}: "
        f"open {standin}/#chat={DEMO_CHAT} (or type {DEMO_CHAT} in the inbox's chat id box)"
    )


async def publish(url: str, event: Event) -> None:
    """Publish as a platform service does: confirmed, `mandatory` (no queue bound is an error)."""
    async with connected(url) as publisher:
        await publisher.publish(event)
