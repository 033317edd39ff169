"""What the benchmarks share: isolated servers, processes of ours, seeding, result files (the
process runner, the stand-in and seeding are the tests' own, from tests/support)."""

from __future__ import annotations

import atexit
import json
import os
import platform
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.standin.client import StandInClient
from tests.infra import find_servers, isolated_database, isolated_vhost
from tests.support import links, processes
from tests.support.processes import Service
from tests.support.standin import standin_process

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
QUICK = os.environ.get("BENCH_QUICK") == "1"
"""BENCH_QUICK=1: smaller sizes, for a quick look (the numbers are noisier)."""

# The services default to production; benchmarks run development configurations (the stand-in,
# short secrets), in-process settings included, so they say so explicitly.
os.environ["APP_ENV"] = "development"


def sized(full: int, quick: int) -> int:
    """`full`, or `quick` under BENCH_QUICK=1."""
    return quick if QUICK else full


@dataclass
class Servers:
    """A throwaway database and vhost on the real servers."""

    database_url: str
    rabbitmq_url: str


@contextmanager
def servers() -> Iterator[Servers]:
    """A migrated database and a vhost of this benchmark's own, removed afterwards."""
    with ExitStack() as stack:
        found = stack.enter_context(find_servers())
        database_url = stack.enter_context(isolated_database(found, prefix="sns_bench"))
        rabbitmq_url = stack.enter_context(isolated_vhost(found, prefix="bench"))
        yield Servers(database_url, rabbitmq_url)


class Process(Service):
    """One of our commands as a child process, started at once, its output in
    bench/results/<name>.log; stopped with SIGTERM (at the latest when the benchmark exits)."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        super().__init__(name, argv, env, RESULTS / f"{name}.log")
        self.start()
        # A benchmark that fails half-way must not leave its processes running on a shared
        # machine (stopping a stopped process does nothing).
        atexit.register(self.stop)


@asynccontextmanager
async def standin(*limit_args: str) -> AsyncIterator[tuple[StandInClient, str]]:
    """The stand-in as its own process (so its CPU is not the notifier's): a client, its URL."""
    async with standin_process(RESULTS, *limit_args) as client:
        yield client, client.base_url


def bench_users(
    count: int, prefix: str = "bench", chat_base: int = 7_000_000_000
) -> list[tuple[str, int]]:
    """Users `<prefix>-1..N` with chats `chat_base + i`."""
    return [(f"{prefix}-{i}", chat_base + i) for i in range(1, count + 1)]


async def seed_links(
    database_url: str, users: int, prefix: str = "bench", chat_base: int = 7_000_000_000
) -> None:
    """`users` linked users `<prefix>-1..N` with chats `chat_base + i`."""
    await links.seed_links(database_url, bench_users(users, prefix, chat_base))


def service_env(s: Servers, api_base: str, **extra: Any) -> dict[str, str]:
    """Environment for one of our services pointed at the benchmark's servers and stand-in."""
    return processes.service_env(
        s.database_url, s.rabbitmq_url, api_base, **({"log_level": "WARNING"} | extra)
    )


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write one benchmark's numbers to bench/results/<name>.json (with the machine)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **result,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
