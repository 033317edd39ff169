"""Limits that adapt, and the whole budget a network away (issue 17).

    uv run python -m bench.limits_bench [convergence|rtt]   (default: both)

1. **convergence**: the stand-in enforces a hidden limit (22/s, 1/s per chat) below what the
   senders are configured for (Telegram's documented 30/s); one message to each of N chats from a
   filled queue. Three senders, one after another in this run: our notifier (adaptive), our
   notifier with fixed rates (`TELEGRAM_RATE_ADAPTIVE=false`: any 429 pauses every send, the
   behaviour before), and python-telegram-bot's `AIORateLimiter` (bench/senders.py `ptb`).
   Accepted sends and 429s of each second; lost messages; the rate over the second half. Then ours
   at Telegram's documented limits (30/s): nothing may change.
2. **rtt**: the stand-in a round trip away (`--one-way-delay-ms`, half the round trip each way)
   at 1, 40 and 80 ms, enforcing Telegram's limits: a paid-broadcast drain of 5,000 messages to
   5,000 chats (1000/s), and 900 messages to 450 chats at 30/s; each with sends counted on arrival
   (now) and until their answer (`TELEGRAM_RATE_COUNT_AT=completion`, before).

Every run is bench/notifier_bench.py's `limits` procedure. Results: bench/results/limits.json;
the chart: bench/results/limits.png (`python -m bench.chart` draws it with the summary).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from rich.console import Console

from bench import notifier_bench
from bench.harness import Process, Servers, service_env, sized, write_result
from bench.notifier_bench import Starter

console = Console()
HIDDEN = 22
CONFIGURED = 30
CONVERGENCE_MESSAGES = sized(HIDDEN * 90, HIDDEN * 45)
DRAIN = sized(5_000, 3_000)
RTTS_MS = (1, 40, 80)
HIDDEN_ARGS = ("--global-rate", str(HIDDEN), "--chat-rate", "1", "--group-rate-per-min", "20")


def notifier(**settings: Any) -> Starter:
    """Starts our notifier with these settings (its limits on)."""

    def start(s: Servers, base: str, lifted: bool = False) -> Process:
        return notifier_bench.start_with(s, base, **settings)

    return start


def start_ptb(s: Servers, base: str, lifted: bool = False) -> Process:
    """python-telegram-bot with AIORateLimiter at Telegram's documented limits."""
    env = service_env(s, base)
    return Process(["-m", "bench.senders", "ptb"], env, "ptb_sender")


def summarize(run: dict[str, Any], limit: float) -> dict[str, Any]:
    """The convergence figures of one run: the rate over its second half, the 429s of each
    half, how far from the hidden limit."""
    timeline = run.get("timeline", {"accepted": [], "too_many_requests": []})
    accepted, refused = timeline["accepted"], timeline["too_many_requests"]
    half = len(accepted) // 2
    late = accepted[half:-1] or accepted  # the last second is partial
    rate = sum(late) / max(1, len(late))
    return {
        "rate_second_half": round(rate, 2),
        "within_of_hidden_limit": round(abs(rate - limit) / limit, 4),
        "too_many_first_half": sum(refused[:half]),
        "too_many_second_half": sum(refused[half:]),
    }


async def convergence() -> dict[str, Any]:
    """The three senders under the hidden limit, then ours under the documented one."""
    out: dict[str, Any] = {"hidden_limit_per_second": HIDDEN, "configured": CONFIGURED}
    for name, start in (
        ("ours", notifier()),
        ("fixed_rate", notifier(telegram_rate_adaptive="false")),
        ("ptb_aioratelimiter", start_ptb),
    ):
        console.print(f"[bold]hidden {HIDDEN}/s[/bold]: {name}")
        run = await notifier_bench.limits(
            CONVERGENCE_MESSAGES, 1, start, HIDDEN_ARGS, HIDDEN, timeline=True
        )
        run |= summarize(run, HIDDEN)
        console.print({k: v for k, v in run.items() if k != "timeline"})
        out[name] = run
    console.print("[bold]documented limits[/bold] (30/s): ours")
    out["documented"] = await notifier_bench.limits(start=notifier())
    return out


async def rtt() -> dict[str, Any]:
    """Paid-broadcast drains and 30/s runs at each round trip, counted on arrival and before."""
    out: dict[str, Any] = {}
    for ms in RTTS_MS:
        args = ("--limits", "--one-way-delay-ms", str(ms / 2))
        for count_at in ("arrival", "completion"):
            label = f"{ms} ms, counted at {count_at}"
            console.print(f"[bold]{label}[/bold]: paid broadcast, then 30/s")
            paid = notifier(telegram_allow_paid_broadcast="true", telegram_rate_count_at=count_at)
            row = {
                "paid_broadcast": await notifier_bench.limits(DRAIN, 1, paid, args, 1000),
                "standard": await notifier_bench.limits(
                    start=notifier(telegram_rate_count_at=count_at), standin_args=args
                ),
            }
            console.print(row)
            out.setdefault(f"{ms}ms", {})[count_at] = row
    return out


PARTS = {"convergence": convergence, "rtt": rtt}


async def main(parts: list[str]) -> dict[str, Any]:
    """Run the chosen parts; write bench/results/limits.json."""
    results = {name: await PARTS[name]() for name in parts}
    write_result("limits", results)
    return results


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    asyncio.run(main(sys.argv[1:] or list(PARTS)))
