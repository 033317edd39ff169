"""Notifier benchmarks: throughput with limits lifted, latency at 100 events/s, budget use.

    uv run python -m bench.notifier_bench [throughput|latency|limits]   (default: all three)

Every part runs the notifier and the stand-in as separate processes against real RabbitMQ and
PostgreSQL (a throwaway database and vhost), publishing with the shared publisher.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import Progress

from bench.harness import (
    Process,
    percentile,
    seed_links,
    servers,
    service_env,
    standin,
    wait_until,
    write_result,
)
from shared.contract import new_event
from shared.publisher import EventPublisher

console = Console()
MARK = re.compile(r"bench #(\d+)")


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


def _start_notifier(s: Any, base: str, **settings: Any) -> Process:
    for name in ("NOTIFIER_BATCH_WAIT_MS", "NOTIFIER_PREFETCH", "NOTIFIER_BATCH_SIZE"):
        if name in os.environ:
            settings[name.lower()] = os.environ[name]
    return Process(
        ["-m", "services.cli", "notifier"],
        service_env(s, base, notifier_port=0, **settings),
        "notifier",
    )


async def throughput(
    events: int = int(os.environ.get("BENCH_EVENTS", 20_000)), users: int = 2_000
) -> dict[str, Any]:
    """Events/s from a pre-filled queue to sendMessage accepted, limits lifted."""
    with servers() as s:
        await seed_links(s.database_url, users)
        async with standin() as (client, base):
            # Declare the topology with a first short run, then fill the queue while it is stopped.
            notifier = _start_notifier(s, base, telegram_rate_global=0, telegram_rate_per_chat=0)
            await _wait_queue(s.rabbitmq_url)
            notifier.stop()
            with Progress(console=console, transient=True) as progress:
                await _publish_all(
                    s.rabbitmq_url, [event(i, users) for i in range(events)], progress
                )
                notifier = _start_notifier(
                    s, base, telegram_rate_global=0, telegram_rate_per_chat=0
                )
                started = time.monotonic()
                task = progress.add_task("delivering", total=events)
                # CPU is counted from the first delivered message on (imports and start-up aside).
                await wait_until(lambda: _progress(client, progress, task, 1), 120, 0.01)
                cpu0 = notifier.cpu_seconds()
                done0 = (await client.stats())["send_message_accepted"]
                await wait_until(lambda: _progress(client, progress, task, events), 300, 0.2)
            elapsed = time.monotonic() - started
            _, first = await client.sent(since=0, limit=1)
            _, last = await client.sent(since=events - 1, limit=1)
            cpu = (notifier.cpu_seconds() - cpu0) / (events - done0)
            rss = notifier.rss_mb()
            notifier.stop()
    span = last[0]["sent_at"] - first[0]["sent_at"]
    return {
        "events": events,
        "seconds_wall_from_start": round(elapsed, 2),
        "events_per_second": round((events - 1) / span, 1),
        "notifier_cpu_ms_per_event": round(cpu * 1000, 3),
        "notifier_rss_mb": round(rss, 1),
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

    await wait_until(declared, 30, 0.2)


async def latency(rate: int = 100, seconds: int = 20, users: int = 2_000) -> dict[str, Any]:
    """Publish-to-sendMessage latency at a steady rate (limits lifted so only we are measured)."""
    with servers() as s:
        await seed_links(s.database_url, users)
        async with standin() as (client, base):
            notifier = _start_notifier(s, base, telegram_rate_global=0, telegram_rate_per_chat=0)
            await _wait_queue(s.rabbitmq_url)
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
            await wait_until(lambda: _count(client, total), 60, 0.2)
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


async def limits(chats: int = 450, per_chat: int = 2) -> dict[str, Any]:
    """Achieved rate under Telegram's default limits, with the stand-in enforcing them."""
    total = chats * per_chat
    with servers() as s:
        await seed_links(s.database_url, chats)
        async with standin("--limits") as (client, base):
            notifier = _start_notifier(s, base)
            await _wait_queue(s.rabbitmq_url)
            with Progress(console=console, transient=True) as progress:
                await _publish_all(
                    s.rabbitmq_url, [event(i, chats) for i in range(total)], progress
                )
                task = progress.add_task("delivering at 30/s", total=total)
                await wait_until(lambda: _progress(client, progress, task, total), 120, 0.25)
            _, messages = await client.sent(since=0, limit=total)
            stats = await client.stats()
            notifier.stop()
    stamps = sorted(m["sent_at"] for m in messages)
    achieved = (len(stamps) - 30) / (stamps[-1] - stamps[0])
    return {
        "messages": total,
        "chats": chats,
        "limit_per_second": 30,
        "achieved_per_second": round(achieved, 2),
        "fraction_of_limit": round(achieved / 30, 4),
        "too_many_requests": stats["too_many_requests"],
    }


async def _progress(client: Any, progress: Progress, task: Any, total: int) -> bool:
    done = (await client.stats())["send_message_accepted"]
    progress.update(task, completed=done)
    return bool(done >= total)


PARTS = {"throughput": throughput, "latency": latency, "limits": limits}


async def main(parts: list[str]) -> dict[str, Any]:
    results = {}
    for name in parts:
        console.print(f"[bold]notifier {name}[/bold]")
        results[name] = await PARTS[name]()
        console.print(results[name])
    write_result("notifier", results)
    return results


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(PARTS)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    asyncio.run(main(chosen))
