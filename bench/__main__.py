"""`make bench`: every benchmark, one after another; a table at the end, JSON in bench/results/.

uv run python -m bench                 # all
uv run python -m bench notifier        # one group (notifier, scheduler)
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import notifier_bench, scheduler_bench
from bench.harness import write_result

console = Console()


def run(groups: list[str]) -> dict[str, Any]:
    """Run the chosen benchmark groups and return their numbers."""
    results: dict[str, Any] = {}
    if "notifier" in groups:
        results["notifier"] = asyncio.run(notifier_bench.main(list(notifier_bench.PARTS)))
    if "scheduler" in groups:
        results["scheduler"] = scheduler_bench.main()
        write_result("scheduler", results["scheduler"])
    return results


def table(results: dict[str, Any]) -> Table:
    """The numbers a reader looks for, one row each."""
    rows = Table(title="sns-telegram benchmarks")
    rows.add_column("benchmark")
    rows.add_column("result", justify="right")
    rows.add_column("target")
    n = results.get("notifier", {})
    if "throughput" in n:
        rows.add_row(
            "notifier throughput, limits lifted",
            f"{n['throughput']['events_per_second']:,.0f} events/s",
            "≥ 1,000",
        )
        rows.add_row(
            "notifier CPU per event", f"{n['throughput']['notifier_cpu_ms_per_event']:.2f} ms", ""
        )
    if "latency" in n:
        rows.add_row("publish → sendMessage p50 @100/s", f"{n['latency']['p50_ms']:.1f} ms", "")
        rows.add_row(
            "publish → sendMessage p99 @100/s", f"{n['latency']['p99_ms']:.1f} ms", "≤ 50 ms"
        )
    if "limits" in n:
        rows.add_row(
            "rate under Telegram's limits",
            f"{100 * n['limits']['fraction_of_limit']:.1f} % of 30/s",
            "≥ 99 %",
        )
        rows.add_row("429 answers under limits", str(n["limits"]["too_many_requests"]), "0")
    s = results.get("scheduler")
    if s:
        rows.add_row(
            f"scheduler: {s['users']:,} daily triggers emitted", f"{s['emit_seconds']} s", "seconds"
        )
    return rows


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["notifier", "scheduler"]
    console.print(table(run(chosen)))
