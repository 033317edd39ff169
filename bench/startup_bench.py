"""Start-up: seconds from launching each service to its first `200` on `/readyz`, and from
launching `sns-telegram dev` to every service and the stand-in's inbox answering.

    uv run python -m bench.startup_bench [ROUNDS]     (default 5; BENCH_QUICK=1: 2)

Each service is started as its own process (`python -m services.cli NAME`, as `make run` does)
against a migrated throwaway database, a vhost and the stand-in, `ROUNDS` times in turn
(notifier, linker, scheduler, notifier, ...), so a busy machine slows each alike; `/readyz` is
polled every 50 ms. The median and the spread go to bench/results/startup.json.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

import httpx
from rich.console import Console

from bench.harness import Process, servers, service_env, sized, standin, write_result
from tests.support.processes import free_port

console = Console()
SERVICES = ("notifier", "linker", "scheduler")
JWT_SECRET = "bench-startup-secret-0123456789abcdef"
DEADLINE = 120.0


async def _answers(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _time_to(urls: list[str], process: Process, started: float) -> float:
    """Seconds from `started` until every URL answers 200 (raises if the process dies)."""
    async with httpx.AsyncClient(timeout=2) as client:
        pending = list(urls)
        while pending:
            if not process.alive:
                raise RuntimeError(f"{process.name} exited before it answered")
            if time.monotonic() - started > DEADLINE:
                raise RuntimeError(f"{process.name}: {pending} did not answer in {DEADLINE} s")
            pending = [u for u in pending if not await _answers(client, u)]
            if pending:
                await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _service(name: str, env: dict[str, str]) -> float:
    port = free_port()
    env = {**env, f"{name.upper()}_PORT": str(port)}
    started = time.monotonic()
    process = Process(["-m", "services.cli", name], env, f"startup-{name}")
    try:
        return await _time_to([f"http://127.0.0.1:{port}/readyz"], process, started)
    finally:
        process.stop()


async def _dev(env: dict[str, str]) -> float:
    ports = {name: free_port() for name in (*SERVICES, "standin")}
    env = {**env, **{f"{name.upper()}_PORT": str(ports[name]) for name in SERVICES}}
    env.pop("TELEGRAM_API_BASE", None)
    urls = [f"http://127.0.0.1:{ports[name]}/readyz" for name in SERVICES]
    urls.append(f"http://127.0.0.1:{ports['standin']}/")
    started = time.monotonic()
    argv = ["-m", "services.cli", "dev", "--standin-port", str(ports["standin"])]
    process = Process(argv, env, "startup-dev")
    try:
        return await _time_to(urls, process, started)
    finally:
        process.stop(timeout=30)


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(values), 2),
        "min_s": round(min(values), 2),
        "max_s": round(max(values), 2),
        "runs_s": [round(v, 2) for v in values],
    }


async def measure(rounds: int) -> dict[str, Any]:
    """Time to ready of each service and of `sns-telegram dev`, `rounds` times each."""
    times: dict[str, list[float]] = {name: [] for name in (*SERVICES, "dev")}
    with servers() as s:
        async with standin() as (_, api_base):
            env = service_env(s, api_base, jwt_secret=JWT_SECRET, log_level="INFO")
            for round_ in range(rounds):
                for name in SERVICES:
                    times[name].append(await _service(name, env))
                times["dev"].append(await _dev(env))
                console.print(
                    f"round {round_ + 1}: "
                    + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
                )
    return {"rounds": rounds, "seconds_to_ready": {k: _summary(v) for k, v in times.items()}}


def main(rounds: int | None = None) -> dict[str, Any]:
    """Measure, print a table, write bench/results/startup.json."""
    result = asyncio.run(measure(rounds or sized(5, 2)))
    for name, summary in result["seconds_to_ready"].items():
        console.print(
            f"{name:10} median {summary['median_s']:6.2f} s  "
            f"(min {summary['min_s']:.2f}, max {summary['max_s']:.2f})"
        )
    write_result("startup", result)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
