"""The budget a round trip away, on the sending path alone (issue 17): the notifier's own
`RateLimiter` and `AiogramSender`, in this process, over HTTP to the stand-in in its own process
(Telegram's limits enforced on arrival, `--one-way-delay-ms` each way); no RabbitMQ, PostgreSQL or
notifier around them.

    uv run python -m bench.sending_path MESSAGES CHATS RTT_MS arrival|completion paid|standard

Why alone: on a 2-core machine the whole notifier (broker, database, batching, sending) carries
about 1000 sends/s with no limits at all when the machine is quiet, 200-300 when it is loaded, so
a paid-broadcast drain through it measures CPU, not how much of the 1000/s the limiter lets
through when every answer is a round trip away, which is what the issue asks.
The queue is a list in memory, worked as the notifier works its own: one task per chat sending
that chat's messages in order (its `ChatSequencer`), at most `CONCURRENT` chats at once (its
prefetch), each send `acquire(expose=True)`, `send_text(on_written=unexpose)` (the hand-over mark
commits at once), `release`; a 429 is `too_many` and the same message again. Each drain is a process of its own
run as the notifier's is (uvloop, `tune_gc`: with CPython's default collector the sender stalled
for up to 300 ms at a time at 1000/s, and every stall is budget lost).

Budget use is `limit / mean(t[k + limit] - t[k])` over the stand-in's arrival stamps `t`: a
sliding window lets send k + limit arrive one window after send k at the soonest, so this is 1.0
when every send arrives the moment the window allows it, whatever the first burst looked like.
The first burst (the first `limit` sends) takes this client 0.5-1 s of CPU to write, so the
burst-inclusive `(delivered - limit) / (last - first)` mostly measures that; it is reported too.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

import uvloop

from bench.harness import percentile, standin
from services.common.telegram import make_bot
from services.notifier.main import tune_gc
from services.notifier.processor import exposure_bound
from services.notifier.ratelimit import RateLimiter
from services.notifier.settings import NotifierSettings
from services.notifier.telegram import AiogramSender, Failure, SendError

CONCURRENT = 500
"""Chats worked at once (the notifier's default prefetch)."""
CONNECTIONS = 200
"""aiohttp connections to Telegram (the notifier's `make_bot(limit=200)`)."""
CHAT_BASE = 7_000_000_000

WHAT = (
    "sending path alone: services.notifier RateLimiter + AiogramSender in one process, over HTTP "
    "to the stand-in (own process, --limits, --one-way-delay-ms = RTT/2) enforcing the limit on "
    "arrival; no RabbitMQ, PostgreSQL or notifier. budget_use = the window (1 s) / mean(t[k+limit] - t[k]) "
    "over the stand-in's arrival stamps (1.0: every send arrives the moment the sliding window "
    "allows); burst_inclusive = (delivered - limit) / (last - first) / limit"
)


async def drain(
    messages: int, chats: int, rtt_ms: float, count_at: str, paid: bool
) -> dict[str, Any]:
    """`messages` round-robin over `chats` chats through the real limiter and sender, to a
    stand-in enforcing Telegram's limits (paid broadcast's 1000/s when `paid`) `rtt_ms` away."""
    args = ("--limits", "--one-way-delay-ms", str(rtt_ms / 2))
    async with standin(*args) as (client, base):
        settings = NotifierSettings(
            telegram_api_base=base,
            telegram_allow_paid_broadcast=paid,
            telegram_rate_count_at=count_at,  # type: ignore[arg-type]
        )
        limits = settings.limits()
        limiter = RateLimiter(limits, exposure=exposure_bound(limits.global_per_second))
        bot = make_bot(settings, timeout=30, limit=CONNECTIONS)
        sender = AiogramSender(bot, allow_paid_broadcast=paid)
        per_chat: dict[int, list[int]] = {}
        for i in range(messages):
            per_chat.setdefault(CHAT_BASE + i % chats, []).append(i)
        slots = asyncio.Semaphore(CONCURRENT)
        trips: list[float] = []

        async def send(chat: int, number: int) -> None:
            while True:
                await limiter.acquire(chat, expose=True)
                granted = time.monotonic()
                try:
                    await sender.send_text(chat, f"bench #{number}", on_written=limiter.unexpose)
                except SendError as error:
                    limiter.release(chat)
                    if error.failure is not Failure.RETRY_AFTER:
                        raise
                    limiter.too_many(chat, error.retry_after or 1.0)
                    continue
                limiter.release(chat)
                trips.append(time.monotonic() - granted)
                return

        async def one_chat(chat: int, numbers: list[int]) -> None:
            async with slots:
                for number in numbers:
                    await send(chat, number)

        cpu = time.process_time()
        try:
            await asyncio.gather(*(one_chat(c, ns) for c, ns in per_chat.items()))
        finally:
            await bot.session.close()
        cpu = time.process_time() - cpu
        stats = await client.stats()
        _, sent = await client.sent(since=0, limit=messages)
    limit = int(limits.global_per_second)
    return figures(sorted(m["sent_at"] for m in sent), messages, limit) | {
        "too_many_requests": stats["too_many_requests"],
        "rate_after": round(limiter.rate.rate, 1),
        "round_trip_p50_ms": round(percentile(trips, 50) * 1000, 1),
        "round_trip_p99_ms": round(percentile(trips, 99) * 1000, 1),
        "sender_cpu_seconds": round(cpu, 2),
    }


def figures(stamps: list[float], messages: int, limit: int) -> dict[str, Any]:
    """Budget use and the burst-inclusive rate of one run, from the arrival stamps."""
    pairs = len(stamps) - limit
    if pairs <= 0:
        return {"delivered": len(stamps), "lost": messages - len(stamps), "budget_use": 0.0}
    mean_gap = sum(stamps[k + limit] - stamps[k] for k in range(pairs)) / pairs
    span = stamps[-1] - stamps[0]
    return {
        "delivered": len(stamps),
        "lost": messages - len(stamps),
        "budget_use": round(1.0 / mean_gap, 4),  # the window is one second
        "burst_inclusive": round((len(stamps) - limit) / span / limit, 4),
        "first_burst_seconds": round(stamps[limit - 1] - stamps[0], 3),
    }


async def repeated(
    runs: int, messages: int, chats: int, rtt_ms: float, count_at: str, paid: bool
) -> dict[str, Any]:
    """`runs` drains: the median budget use (`fraction_of_limit`), its spread, every run."""
    each = [await measured(messages, chats, rtt_ms, count_at, paid) for _ in range(runs)]
    uses = [r["budget_use"] for r in each]
    return {
        "messages": messages,
        "chats": chats,
        "limit_per_second": 1000 if paid else 30,
        "fraction_of_limit": statistics.median(uses),
        "fraction_min": min(uses),
        "fraction_max": max(uses),
        "too_many_requests": sum(r["too_many_requests"] for r in each),
        "lost": sum(r["lost"] for r in each),
        "burst_inclusive_median": statistics.median(r["burst_inclusive"] for r in each),
        "runs": each,
    }


async def measured(
    messages: int, chats: int, rtt_ms: float, count_at: str, paid: bool
) -> dict[str, Any]:
    """One `drain` in a process of its own, run as the notifier runs (`tune_gc`, uvloop), so
    neither the benchmark's own loop nor its garbage is measured."""
    argv = [str(messages), str(chats), str(rtt_ms), count_at, "paid" if paid else "standard"]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.sending_path", *argv, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    if child.returncode:
        raise RuntimeError(f"bench.sending_path {' '.join(argv)} failed ({child.returncode})")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def main(argv: list[str]) -> None:
    """`MESSAGES CHATS RTT_MS arrival|completion paid|standard`: one drain, its figures as one
    JSON line."""
    messages, chats, rtt = int(argv[0]), int(argv[1]), float(argv[2])
    tune_gc()
    result = uvloop.run(drain(messages, chats, rtt, argv[3], argv[4] == "paid"))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    main(sys.argv[1:] or ["5000", "5000", "80", "arrival", "paid"])
