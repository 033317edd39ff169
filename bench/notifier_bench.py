"""Notifier benchmarks: throughput with limits lifted, latency at 100 events/s, budget use.

    uv run python -m bench.notifier_bench [throughput|latency|limits]   (default: all three)

Every part runs the notifier and the stand-in as separate processes against real RabbitMQ and
PostgreSQL (a throwaway database and vhost), publishing with the shared publisher. Each part takes
the consumer to measure (`start`), so bench/baselines.py runs the very same procedure on the
spec-style sender.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import Progress

from bench.harness import (
    Process,
    Servers,
    percentile,
    seed_links,
    servers,
    service_env,
    sized,
    standin,
    write_result,
)
from shared.contract import new_event
from shared.publisher import EventPublisher
from tests.support.waiting import eventually

console = Console()
MARK = re.compile(r"bench #(\d+)")

Starter = Callable[..., Process]
"""Starts the consumer under test: (servers, api base, limits_lifted) -> its process."""


def event(i: int, users: int) -> Any:
    return new_event(
        "post_failure", f"bench-{i % users + 1}", {"platform": "x", "error": f"bench #{i}"}
    )


async def _publish_all(url: str, events: list[Any], progress: Progress | None = None) -> None:
    async with EventPublisher(url) as publisher:
        task = progress.add_task("publishing", total=len(events)) if progress else None
        for start in range(0, len(events), 1000):
            await publisher.publish_many(events[start : start + 1000])
            if progress and task is not None:
                progress.update(task, advance=min(1000, len(events) - start))


def start_notifier(s: Servers, base: str, lifted: bool = True) -> Process:
    """Our notifier; `lifted` turns its own rate limits off (0 = no limit)."""
    settings = {"telegram_rate_global": 0, "telegram_rate_per_chat": 0} if lifted else {}
    return start_with(s, base, **settings)


def start_with(s: Any, base: str, **settings: Any) -> Process:
    """Our notifier with these settings (and the batching ones of the environment)."""
    for name in ("NOTIFIER_BATCH_WAIT_MS", "NOTIFIER_PREFETCH", "NOTIFIER_BATCH_SIZE"):
        if name in os.environ:
            settings[name.lower()] = os.environ[name]
    return Process(
        ["-m", "services.cli", "notifier"],
        service_env(s, base, notifier_port=0, **settings),
        "notifier",
    )


async def throughput(
    events: int = int(os.environ.get("BENCH_EVENTS", sized(20_000, 5_000))),
    users: int = 2_000,
    start: Starter = start_notifier,
    *,
    on: Servers | None = None,
    make: Callable[[int, int], Any] = event,
) -> dict[str, Any]:
    """Events/s from a pre-filled queue to sendMessage accepted, limits lifted.

    In a throwaway database with `users` links, or `on` given servers whose links are seeded
    (their queue empty); events `make(i, users)`, each one sendMessage.
    """
    if on is None:
        with servers() as s:
            await seed_links(s.database_url, users)
            return await throughput(events, users, start, on=s, make=make)
    s = on
    async with standin() as (client, base):
        # Declare the topology with a first short run, then fill the queue while it is stopped.
        notifier = start_notifier(s, base)
        await _wait_queue(s.rabbitmq_url)
        notifier.stop()
        with Progress(console=console, transient=True) as progress:
            await _publish_all(s.rabbitmq_url, [make(i, users) for i in range(events)], progress)
            notifier = start(s, base, True)
            started = time.monotonic()
            task = progress.add_task("delivering", total=events)
            # CPU is counted from the first delivered message on (imports and start-up aside).
            await eventually(lambda: _progress(client, progress, task, 1), 120, 0.01)
            cpu0 = notifier.cpu_seconds()
            done0 = (await client.stats())["send_message_accepted"]
            await eventually(lambda: _progress(client, progress, task, events), 300, 0.2)
        elapsed = time.monotonic() - started
        _, first = await client.sent(since=0, limit=1)
        _, last = await client.sent(since=events - 1, limit=1)
        cpu = (notifier.cpu_seconds() - cpu0) / max(1, events - done0)
        rss = notifier.rss_mb()
        notifier.stop()
    span = last[0]["sent_at"] - first[0]["sent_at"]
    return {
        "events": events,
        "seconds_wall_from_start": round(elapsed, 2),
        "events_per_second": round((events - 1) / span, 1),
        "notifier_cpu_ms_per_event": round(cpu * 1000, 3),
        "notifier_rss_mb": round(rss, 1),
        "measured": "(events - 1) / (last - first sendMessage accepted at the stand-in)",
    }


async def _wait_queue(url: str) -> None:
    import aio_pika

    async def declared() -> bool:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            try:
                await channel.get_queue("notifier.events", ensure=True)
                return True
            except Exception:
                return False

    # A notifier starting on a busy machine (a shared CI runner) may take more than 30 s.
    await eventually(declared, 120, 0.2)


async def _wait_consumer(url: str) -> None:
    """Wait until something consumes notifier.events (so start-up is not measured as latency)."""
    import aio_pika

    async def consumed() -> bool:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("notifier.events", passive=True)
            return bool(queue.declaration_result.consumer_count)

    await eventually(consumed, 120, 0.1)


async def latency(
    rate: int = 100,
    seconds: int = sized(20, 10),
    users: int = 2_000,
    start: Starter = start_notifier,
    *,
    on: Servers | None = None,
) -> dict[str, Any]:
    """Publish-to-sendMessage latency at a steady rate (limits lifted so only we are measured);
    in a throwaway database with `users` links, or `on` given servers whose links are seeded."""
    if on is None:
        with servers() as s:
            await seed_links(s.database_url, users)
            return await latency(rate, seconds, users, start, on=s)
    s = on
    async with standin() as (client, base):
        notifier = start_notifier(s, base)
        await _wait_queue(s.rabbitmq_url)
        if start is not start_notifier:
            notifier.stop()
            notifier = start(s, base, True)
        await _wait_consumer(s.rabbitmq_url)
        published: dict[int, float] = {}
        total = rate * seconds
        async with EventPublisher(s.rabbitmq_url) as publisher:
            started = time.monotonic()
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task(f"{rate} events/s", total=total)
                for i in range(total):
                    due = started + i / rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    published[i] = time.monotonic()
                    await publisher.publish(event(i, users))
                    progress.update(task, advance=1)
        await eventually(lambda: _count(client, total), 300, 0.2)
        _, messages = await client.sent(since=0, limit=total)
        notifier.stop()
    latencies = [
        (m["sent_at"] - published[int(MARK.search(m["text"]).group(1))]) * 1000  # type: ignore[union-attr]
        for m in messages
    ]
    return {
        "rate": rate,
        "events": total,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
    }


async def _count(client: Any, total: int) -> bool:
    return bool((await client.stats())["send_message_accepted"] >= total)


async def limits(
    chats: int = sized(450, 225),
    per_chat: int = 2,
    start: Starter = start_notifier,
    standin_args: tuple[str, ...] = ("--limits",),
    limit: int = 30,
    timeline: bool = False,
) -> dict[str, Any]:
    """Achieved rate under the stand-in's limits (`standin_args`: Telegram's by default), the
    queue filled before the measured consumer starts.

    The measured consumer runs with its own limits on. One that never retries (the spec-style
    sender) is done when it has tried every event once; what the stand-in refused is lost.
    `limit`: the stand-in's global limit the rate is a fraction of (a hidden one, or paid
    broadcast's 1000/s); `timeline`: also the accepted sends and 429s of each second.
    """
    total = chats * per_chat
    with servers() as s:
        await seed_links(s.database_url, chats)
        async with standin(*standin_args) as (client, base):
            notifier = start_notifier(s, base, lifted=False)  # declares the queue, then stops
            await _wait_queue(s.rabbitmq_url)
            notifier.stop()
            with Progress(console=console, transient=True) as progress:
                await _publish_all(
                    s.rabbitmq_url, [event(i, chats) for i in range(total)], progress
                )
                notifier = start(s, base, False)
                task = progress.add_task(f"delivering at {limit}/s", total=total)
                quiet = Quiet()
                samples: list[tuple[float, int]] = []

                async def done() -> bool:
                    finished = await _progress(client, progress, task, total, quiet)
                    samples.append((time.monotonic(), quiet.refused))
                    return finished

                await eventually(done, 600, 0.25)
            stats = await client.stats()
            _, messages = await client.sent(since=0, limit=total)
            notifier.stop()
    stamps = sorted(m["sent_at"] for m in messages)
    # Budget use: the fastest Telegram allows (a burst of `limit`, then `limit`/s) over the time
    # taken, i.e. (delivered - limit) / (last - first). A sender that never bursts tops out a
    # little below 100 % (96.7 % for 900 messages at 30/s).
    enough = len(stamps) > limit
    span = stamps[-1] - stamps[0] if enough else float("nan")
    achieved = (len(stamps) - limit) / span if enough else 0.0
    overall = (len(stamps) - 1) / span if enough else 0.0
    result = {
        "messages": total,
        "chats": chats,
        "limit_per_second": limit,
        "delivered": len(messages),
        "lost": total - len(messages),
        "achieved_per_second": round(achieved, 2),
        "fraction_of_limit": round(achieved / limit, 4),
        "overall_per_second": round(overall, 2),
        "too_many_requests": stats["too_many_requests"],
        "measured": f"(delivered - {limit}) / (last - first accepted): the first burst aside",
    }
    if timeline and stamps:
        result["timeline"] = per_second(stamps, samples)
    return result


def per_second(stamps: list[float], samples: list[tuple[float, int]]) -> dict[str, list[int]]:
    """Accepted sends and 429s in each second from the first accepted send (429s from the
    stand-in's counter, sampled every 0.25 s)."""
    first = stamps[0]
    seconds = int(stamps[-1] - first) + 1
    accepted = [0] * seconds
    for t in stamps:
        accepted[int(t - first)] += 1
    refused = [0] * seconds
    before = 0
    for t, count in samples:
        second = int(t - first)
        if 0 <= second < seconds:
            refused[second] += count - before
        before = count
    return {"accepted": accepted, "too_many_requests": refused}


async def _progress(
    client: Any, progress: Progress, task: Any, total: int, quiet: Quiet | None = None
) -> bool:
    """Accepted sends reached `total`; or, given `quiet`, every event was tried once and the
    sender has gone quiet (one that does not retry has finished: what was refused is lost)."""
    stats = await client.stats()
    done = stats["send_message_accepted"]
    progress.update(task, completed=done)
    if quiet is not None:
        quiet.refused = stats["too_many_requests"]
    if done >= total:
        return True
    tried = stats["requests"].get("sendMessage", 0)
    return quiet is not None and quiet(tried) and tried >= total


class Quiet:
    """Called with a counter: True once it has not moved for `seconds`."""

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds
        self.value: int | None = None
        self.since = time.monotonic()
        self.refused = 0
        """The stand-in's 429s at the last look."""

    def __call__(self, value: int) -> bool:
        now = time.monotonic()
        if value != self.value:
            self.value, self.since = value, now
            return False
        return now - self.since >= self.seconds


PARTS = {"throughput": throughput, "latency": latency, "limits": limits}


async def main(parts: list[str]) -> dict[str, Any]:
    """Run the chosen parts on our notifier; write bench/results/notifier.json."""
    results = {}
    for name in parts:
        console.print(f"[bold]notifier {name}[/bold]")
        results[name] = await PARTS[name]()  # type: ignore[operator]
        console.print(results[name])
    write_result("notifier", results)
    return results


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(PARTS)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    asyncio.run(main(chosen))
