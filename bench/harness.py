"""What the benchmarks share: isolated servers, processes of ours, seeding, result files."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from services.standin.client import StandInClient
from shared.db import create_engine
from tests.infra import find_servers, isolated_database, isolated_vhost
from tests.waiting import eventually as wait_until

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


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class Process:
    """One of our commands as a child process, stopped with SIGTERM."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.log = open(RESULTS / f"{name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        """Resident memory of the process, in MiB."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU time the process used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def standin(*limit_args: str) -> AsyncIterator[tuple[StandInClient, str]]:
    """The stand-in as its own process (so its CPU is not the notifier's)."""
    port = free_port()
    process = Process(["-m", "services.standin", "--port", str(port), *limit_args], {}, "standin")
    base = f"http://127.0.0.1:{port}"
    try:
        async with StandInClient(base) as client:
            await wait_until(lambda: _answers(port), 20)
            yield client, base
    finally:
        process.stop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


async def seed_links(
    database_url: str, users: int, prefix: str = "bench", chat_base: int = 7_000_000_000
) -> None:
    """`users` linked users `<prefix>-1..N` with chats `chat_base + i`."""
    engine = create_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO telegram_links (user_id, chat_id, chat_type, enabled, linked_at, updated_at) "
                "SELECT :prefix || '-' || g, (:base + g)::text, 'private', true, now(), now() "
                "FROM generate_series(1, :users) AS g"
            ),
            {"prefix": prefix, "base": chat_base, "users": users},
        )
    await engine.dispose()


def service_env(s: Servers, api_base: str, **extra: Any) -> dict[str, str]:
    """Environment for one of our services pointed at the benchmark's servers and stand-in."""
    env = {
        "DATABASE_URL": s.database_url,
        "RABBITMQ_URL": s.rabbitmq_url,
        "TELEGRAM_API_BASE": api_base,
        "LOG_LEVEL": "WARNING",
        "APP_ENV": "development",
    }
    env.pop("TELEGRAM_BOT_TOKEN", None)
    env.update({k.upper(): str(v) for k, v in extra.items()})
    return env


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
