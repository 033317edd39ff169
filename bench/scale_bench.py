"""The scheduler's tick and the daily aggregation at 1,000,000 linked users, beside the same at
10,000 measured in the same run. Writes bench/results/scale.json.

    uv run python -m bench.scale_bench       # BENCH_SCALE_USERS=1000000 (BENCH_QUICK: 200,000)

At each size, in a database of its own:
1. links for every user, spread over 24 summary times an hour apart (UTC), so a tick at 09:00
   has a twenty-fourth of them due (bench/scheduler_bench.py's procedure, `hours=24`): the
   first reconciliation of the schedule with the links, the due query (EXPLAIN ANALYZE), the
   tick that records and publishes the due triggers, and idle ticks (nothing due, the steady
   state: every tick reconciles the schedule with the links);
2. three activity rows per user on the summarised day, then the notifier's aggregation query
   and template over 5,000 users in batches of 200 (bench/daily_summary_bench.py's).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from rich.console import Console

from bench.daily_summary_bench import aggregation_cost, seed_activity
from bench.harness import servers, sized, write_result
from bench.scheduler_bench import emit_triggers

console = Console()
BIG = int(os.environ.get("BENCH_SCALE_USERS", sized(1_000_000, 200_000)))
SMALL = 10_000
HOURS = 24
AGGREGATE_USERS = 5_000


async def at_size(users: int) -> dict[str, Any]:
    """The scheduler's tick and the daily aggregation with `users` linked users."""
    with servers() as s:
        scheduler = await emit_triggers(s.database_url, s.rabbitmq_url, users, hours=HOURS)
        seeded = await seed_activity(s.database_url, users)
        aggregation = await aggregation_cost(s.database_url, min(users, AGGREGATE_USERS))
    aggregation.pop("sample_text")
    return {
        "users": users,
        "scheduler": scheduler,
        "activity_rows": 3 * users,
        "activity_seed_seconds": round(seeded, 1),
        "aggregation": aggregation,
    }


def _ratio(big: float, small: float) -> float:
    return round(big / small, 2) if small else float("nan")


async def run() -> dict[str, Any]:
    """Small, then big; the ratios big / small."""
    small = await at_size(SMALL)
    console.print(f"{SMALL:,} users: {small}")
    big = await at_size(BIG)
    console.print(f"{BIG:,} users: {big}")
    b, s = big["scheduler"], small["scheduler"]
    return {
        "small": small,
        "big": big,
        "ratios_big_over_small": {
            "users": round(BIG / SMALL),
            "idle_tick_seconds": _ratio(b["idle_tick_seconds"], s["idle_tick_seconds"]),
            "due_query_ms": _ratio(b["due_query_ms"], s["due_query_ms"]),
            "emit_ms_per_trigger": _ratio(b["emit_ms_per_trigger"], s["emit_ms_per_trigger"]),
            "aggregation_query_ms_per_user": _ratio(
                big["aggregation"]["query_ms_per_user"], small["aggregation"]["query_ms_per_user"]
            ),
        },
        "how": f"users spread over {HOURS} summary times an hour apart; the 09:00 share "
        f"({BIG // HOURS:,} of {BIG:,}) is due in the measured tick; idle tick: median of 5 ticks "
        "with nothing due (each reconciles the schedule with the links); aggregation: the "
        f"notifier's batch query over {AGGREGATE_USERS:,} users with 3 activity rows each",
    }


def main() -> dict[str, Any]:
    """Run, print and write bench/results/scale.json."""
    result = asyncio.run(run())
    write_result("scale", result)
    console.print(result["ratios_big_over_small"])
    return result


if __name__ == "__main__":
    main()
