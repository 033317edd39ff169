"""Our notifier beside two baselines, measured in the same run and reported as ratios.

    uv run python -m bench.baselines              # ours, spec-style and the aiohttp ceiling
    uv run python -m bench.baselines spec ceiling # only the baselines (no ratios to ours)

- **spec-style** (bench/senders.py `spec`): the seed's Flask integration behind the same queue:
  one event at a time, a synchronous chat-id lookup and a blocking `requests.post`, no retry.
  It goes through the very procedures of bench/notifier_bench.py: throughput (limits lifted),
  latency at 100 events/s, and budget use with the stand-in enforcing Telegram's limits.
- **ceiling** (bench/senders.py `ceiling`): bare aiohttp POSTs of sendMessage, no broker or
  database: the most any Python sender gets out of this stand-in on this machine.

The machine is shared and noisy, so the figures that matter are the ratios, each taken from
numbers measured minutes apart in one run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from rich.console import Console

from bench import notifier_bench
from bench.harness import ROOT, Process, Servers, servers, sized, standin, write_result
from tests.support.waiting import eventually

console = Console()
SPEC_EVENTS = sized(4_000, 1_500)
CEILING_MESSAGES = sized(20_000, 5_000)


def start_spec(s: Servers, base: str, lifted: bool = True) -> Process:
    """The spec-style sender (it has no limits of its own, lifted or not)."""
    env = {
        "DATABASE_URL": s.database_url,
        "RABBITMQ_URL": s.rabbitmq_url,
        "TELEGRAM_API_BASE": base,
    }
    return Process(["-m", "bench.senders", "spec"], env, "spec_sender")


async def spec() -> dict[str, Any]:
    """The spec-style sender through the notifier benchmark's three procedures."""
    console.print("[bold]spec-style sender[/bold] (sync DB lookup + blocking requests.post)")
    out = {
        "throughput": await notifier_bench.throughput(SPEC_EVENTS, start=start_spec),
        "latency": await notifier_bench.latency(start=start_spec),
        "limits": await notifier_bench.limits(start=start_spec),
    }
    console.print(out)
    return out


async def ceiling(messages: int = CEILING_MESSAGES) -> dict[str, Any]:
    """Bare aiohttp sendMessage POSTs against the stand-in, in a process of their own."""
    console.print("[bold]ceiling[/bold] (bare aiohttp sendMessage loop)")
    with servers() as s:  # not used by the loop; keeps the environment like the others'
        async with standin() as (client, base):
            env = {"TELEGRAM_API_BASE": base, "DATABASE_URL": s.database_url}
            started = time.monotonic()
            answer = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "bench.senders", "ceiling", str(messages)],
                env={**os.environ, **env},
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if answer.returncode != 0:
                raise RuntimeError(answer.stderr[-2000:])
            report = json.loads(answer.stdout.strip().splitlines()[-1])
            await eventually(lambda: _accepted(client, messages), 30)
            _, first = await client.sent(since=0, limit=1)
            _, last = await client.sent(since=messages - 1, limit=1)
            wall = time.monotonic() - started
    out = {
        "messages": messages,
        "concurrency": 64,
        "events_per_second": round((messages - 1) / (last[0]["sent_at"] - first[0]["sent_at"]), 1),
        "sender_cpu_ms_per_message": round(report["cpu_ms_per_message"], 3),
        "seconds_wall": round(wall, 2),
    }
    console.print(out)
    return out


async def _accepted(client: Any, count: int) -> bool:
    return bool((await client.stats())["send_message_accepted"] >= count)


def ratios(ours: dict[str, Any], spec_: dict[str, Any], ceiling_: dict[str, Any]) -> dict[str, Any]:
    """Ours against each baseline (>1 means ours is higher)."""
    out: dict[str, Any] = {}
    thr = ours.get("throughput", {}).get("events_per_second")
    if thr and spec_:
        out["throughput_vs_spec"] = round(thr / spec_["throughput"]["events_per_second"], 2)
    if thr and ceiling_:
        out["throughput_vs_ceiling"] = round(thr / ceiling_["events_per_second"], 3)
    lat = ours.get("latency", {})
    if lat and spec_:
        out["p50_spec_over_ours"] = round(spec_["latency"]["p50_ms"] / lat["p50_ms"], 2)
        out["p99_spec_over_ours"] = round(spec_["latency"]["p99_ms"] / lat["p99_ms"], 2)
    lim = ours.get("limits", {})
    if lim and spec_:
        out["budget_use_ours"] = lim["fraction_of_limit"]
        out["budget_use_spec"] = spec_["limits"]["fraction_of_limit"]
        out["delivered_under_limits_ours"] = f"{lim['delivered']}/{lim['messages']}"
        out["delivered_under_limits_spec"] = (
            f"{spec_['limits']['delivered']}/{spec_['limits']['messages']}"
        )
    return out


async def main(parts: list[str], ours: dict[str, Any] | None = None) -> dict[str, Any]:
    """Measure the baselines (and ours, unless given from this run); write baselines.json."""
    results: dict[str, Any] = {}
    if "ours" in parts and ours is None:
        ours = {
            "throughput": await notifier_bench.throughput(),
            "latency": await notifier_bench.latency(),
            "limits": await notifier_bench.limits(),
        }
    if ours is not None:
        results["ours"] = ours
    if "spec" in parts:
        results["spec"] = await spec()
    if "ceiling" in parts:
        results["ceiling"] = await ceiling()
    results["ratios"] = ratios(
        results.get("ours", {}), results.get("spec", {}), results.get("ceiling", {})
    )
    console.print(results["ratios"])
    write_result("baselines", results)
    return results


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["ours", "spec", "ceiling"]
    asyncio.run(main(chosen))
