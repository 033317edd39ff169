"""Limits that adapt, and the whole budget a network away (issue 17).

    uv run python -m bench.limits_bench [convergence|rtt|rtt_pipeline]   (default: all three)

1. **convergence**: the stand-in enforces a hidden limit (22/s, 1/s per chat) below what the
   senders are configured for (Telegram's documented 30/s); one message to each of N chats from a
   filled queue. Three senders, one after another in this run: our notifier (adaptive), our
   notifier with fixed rates (`TELEGRAM_RATE_ADAPTIVE=false`: any 429 pauses every send, the
   behaviour before), and python-telegram-bot's `AIORateLimiter` (bench/senders.py `ptb`).
   Accepted sends and 429s of each second; lost messages; the rate over the second half. Then ours
   at Telegram's documented limits (30/s): nothing may change.
2. **rtt**: the sending path alone a round trip away (bench/sending_path.py: the notifier's
   `RateLimiter` and `AiogramSender` over HTTP to the stand-in, which enforces Telegram's limits
   on arrival `--one-way-delay-ms` away, half the round trip each way) at 1, 40 and 80 ms: a
   paid-broadcast drain of 5,000 messages to 5,000 chats (1000/s) and 900 messages to 450 chats
   at 30/s; each with sends counted on arrival (now) and until their answer
   (`count_at="completion"`, before); `REPETITIONS` runs each, the median and the spread.
3. **rtt_pipeline**: the same drains through the whole notifier (RabbitMQ, PostgreSQL, the
   notifier process) at 80 ms, one run each, beside that pipeline's ceiling (every limit lifted,
   no delay): on 2 cores it carries about 1000 sends/s when the machine is quiet and 200-300 when
   it is loaded, so its paid-broadcast figure is bounded by CPU, not only by the limiter.

The convergence runs and the pipeline drains are bench/notifier_bench.py's `limits` procedure.
Results: bench/results/limits.json (a part not run keeps its previous numbers, each part says
when it was measured); the chart: bench/results/limits.png (`python -m bench.chart` draws it
with the summary).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from rich.console import Console

from bench import notifier_bench, sending_path
from bench.harness import RESULTS, Process, Servers, service_env, sized, write_result
from bench.notifier_bench import Starter

console = Console()
HIDDEN = 22
CONFIGURED = 30
CONVERGENCE_MESSAGES = sized(HIDDEN * 90, HIDDEN * 45)
DRAIN = sized(5_000, 3_000)
STANDARD = sized(900, 450)
RTTS_MS = (1, 40, 80)
REPETITIONS = sized(3, 1)
PIPELINE = (
    "whole notifier: events published to RabbitMQ, the notifier process (PostgreSQL, batching, "
    "the limiter, aiogram) to the stand-in --limits --one-way-delay-ms = RTT/2; one run each; "
    "fraction_of_limit = (delivered - limit) / (last - first accepted) / limit. "
    "ceiling_no_limits_no_delay: the same pipeline with every limit lifted and no delay, the most "
    "it carries on this machine; a paid drain near it is CPU-bound, not held by the limiter"
)
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
    """The sending path alone: paid-broadcast drains and 30/s runs at each round trip, counted on
    arrival and until the answer, `REPETITIONS` times each."""
    out: dict[str, Any] = {"measured": sending_path.WHAT, "repetitions": REPETITIONS}
    for ms in RTTS_MS:
        for count_at in ("arrival", "completion"):
            console.print(f"[bold]{ms} ms, counted at {count_at}[/bold]: paid broadcast, 30/s")
            row = {
                "paid_broadcast": await sending_path.repeated(
                    REPETITIONS, DRAIN, DRAIN, ms, count_at, paid=True
                ),
                "standard": await sending_path.repeated(
                    REPETITIONS, STANDARD, STANDARD // 2, ms, count_at, paid=False
                ),
            }
            console.print({part: _brief(run) for part, run in row.items()})
            out.setdefault("by_rtt", {}).setdefault(f"{ms}ms", {})[count_at] = row
    return out


def _brief(run: dict[str, Any]) -> str:
    return (
        f"{100 * run['fraction_of_limit']:.2f} % ({100 * run['fraction_min']:.2f}-"
        f"{100 * run['fraction_max']:.2f}), {run['too_many_requests']} x 429"
    )


async def rtt_pipeline(ms: int = 80) -> dict[str, Any]:
    """The same drains through the whole notifier, at `ms` only, once each."""
    out: dict[str, Any] = {"measured": PIPELINE, "rtt_ms": ms}
    console.print(f"[bold]pipeline ceiling[/bold]: {DRAIN} events to {DRAIN} chats, no limits")
    out["ceiling_no_limits_no_delay"] = await notifier_bench.throughput(DRAIN, DRAIN)
    args = ("--limits", "--one-way-delay-ms", str(ms / 2))
    for count_at in ("arrival", "completion"):
        console.print(f"[bold]pipeline {ms} ms, counted at {count_at}[/bold]")
        paid = notifier(telegram_allow_paid_broadcast="true", telegram_rate_count_at=count_at)
        out[count_at] = {
            "paid_broadcast": await notifier_bench.limits(DRAIN, 1, paid, args, 1000),
            "standard": await notifier_bench.limits(
                start=notifier(telegram_rate_count_at=count_at), standin_args=args
            ),
        }
        console.print(out[count_at])
    return out


PARTS = {"convergence": convergence, "rtt": rtt, "rtt_pipeline": rtt_pipeline}


async def main(parts: list[str]) -> dict[str, Any]:
    """Run the chosen parts; write bench/results/limits.json with them, keeping the other
    parts' previous numbers (each part says when it was measured)."""
    path = RESULTS / "limits.json"
    before = json.loads(path.read_text()) if path.exists() else {}
    results = {
        name: {"measured_at": before.get("measured_at")} | before[name]
        for name in PARTS
        if name in before and name not in parts
    }
    for name in parts:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        results[name] = await PARTS[name]() | {"measured_at": started}
    write_result("limits", results)
    return results


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    asyncio.run(main(sys.argv[1:] or list(PARTS)))
