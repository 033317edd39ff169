"""Memory: the notifier's resident set before and after 100,000 events (it must not grow).

    uv run python -m bench.memory_bench        # BENCH_QUICK=1: 20,000 events

The notifier runs as a process with limits lifted; events are published while it consumes, and
its RSS (and its open sockets) is read from /proc at start (idle, connected), then every tenth
of the way. Growth is measured from the first tenth (pools, caches and the interpreter's arenas
warm) to the end, and over the second half alone. BENCH_MEMORY_EVENTS overrides the count
(results in memory_<N>.json): a longer run tells a leak (steady slope) from a high-water mark.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from rich.console import Console
from rich.progress import Progress

from bench.harness import seed_links, servers, sized, standin, write_result
from bench.notifier_bench import _publish_all, _wait_consumer, _wait_queue, event, start_notifier
from tests.support.waiting import eventually

console = Console()
DEFAULT_EVENTS = sized(100_000, 20_000)
EVENTS = int(os.environ.get("BENCH_MEMORY_EVENTS", DEFAULT_EVENTS))
USERS = 2_000
STEPS = 10


def sockets(pid: int) -> int:
    """Open sockets of a process (its HTTP connections to Telegram among them)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


async def run(events: int = EVENTS) -> dict[str, Any]:
    """Publish `events` while the notifier consumes; RSS at each tenth."""
    samples: list[tuple[int, float, int]] = []
    with servers() as s:
        await seed_links(s.database_url, USERS)
        async with standin() as (client, base):
            notifier = start_notifier(s, base)
            await _wait_queue(s.rabbitmq_url)
            await _wait_consumer(s.rabbitmq_url)
            samples.append((0, notifier.rss_mb(), sockets(notifier.proc.pid)))
            started = time.monotonic()
            with Progress(console=console, transient=True) as progress:
                publishing = asyncio.create_task(
                    _publish_all(s.rabbitmq_url, [event(i, USERS) for i in range(events)])
                )
                task = progress.add_task(f"{events:,} events", total=events)
                for step in range(1, STEPS + 1):
                    target = events * step // STEPS

                    async def reached(target: int = target) -> bool:
                        assert notifier.alive, "the notifier exited"
                        done = int((await client.stats())["send_message_accepted"])
                        progress.update(task, completed=done)
                        return done >= target

                    await eventually(reached, 600, 0.2)
                    samples.append((target, notifier.rss_mb(), sockets(notifier.proc.pid)))
                await publishing
            elapsed = time.monotonic() - started
            notifier.stop()
    warm = samples[1][1]
    half = samples[STEPS // 2][1]
    end = samples[-1][1]
    return {
        "events": events,
        "seconds": round(elapsed, 1),
        "rss_mb_idle": round(samples[0][1], 1),
        "rss_mb_after_first_tenth": round(warm, 1),
        "rss_mb_after_all": round(end, 1),
        "growth_mb": round(end - warm, 1),
        "growth_percent": round(100 * (end - warm) / warm, 1),
        "growth_mb_second_half": round(end - half, 1),
        "samples": [
            {"events": n, "rss_mb": round(mb, 1), "open_sockets": sockets}
            for n, mb, sockets in samples
        ],
    }


def main() -> dict[str, Any]:
    """Run, print and write bench/results/memory.json (memory_<N>.json for another count)."""
    console.print(f"[bold]memory[/bold]: notifier RSS over {EVENTS:,} events")
    result = asyncio.run(run())
    console.print({k: v for k, v in result.items() if k != "samples"})
    write_result("memory" if EVENTS == DEFAULT_EVENTS else f"memory_{EVENTS}", result)
    return result


if __name__ == "__main__":
    main()
