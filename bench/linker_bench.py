"""Linker: requests/s and latency of `GET /api/telegram/status` and `GET /api/telegram/link-account`
with one uvicorn worker.

    uv run python -m bench.linker_bench

`sns-telegram linker` runs as its own process (one worker, against a throwaway database and vhost
and the stand-in); the load comes from another process (`python -m bench.linker_bench load ...`):
aiohttp, 32 requests in flight, a bounded count and a time limit, every request with its own
valid HS256 JWT made beforehand; then one request at a time, for the latency without queueing. Status asks for 1,000 linked users in turn; link-account asks for
a new user each time (one account may make 10 links a minute), so every request writes a token.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from rich.console import Console

from bench.harness import (
    ROOT,
    Process,
    percentile,
    seed_links,
    servers,
    service_env,
    sized,
    standin,
    write_result,
)
from tests.support.jwts import make_jwt
from tests.support.processes import free_port
from tests.support.waiting import eventually

console = Console()
JWT_SECRET = "bench-linker-secret-0123456789abcdef-0123"
CONCURRENCY = 32
LINKED_USERS = 1_000
ENDPOINTS = {
    "status": ("/api/telegram/status", sized(6_000, 1_500)),
    "link_account": ("/api/telegram/link-account", sized(3_000, 800)),
}
TIME_LIMIT = sized(30, 10)
WARMUP = 200
UNLOADED = sized(300, 100)


def tokens(prefix: str, count: int, cycle: int | None = None) -> list[str]:
    """`count` JWTs for users `<prefix>-1...` (repeating after `cycle` users, if given)."""
    return [
        make_jwt(f"{prefix}-{(i % cycle if cycle else i) + 1}", JWT_SECRET, expires_in=3600)
        for i in range(count)
    ]


async def load(
    url: str, bearer: list[str], seconds: float, concurrency: int = CONCURRENCY
) -> dict[str, Any]:
    """GET `url` once per token, `concurrency` at a time, until done or `seconds` have passed."""
    import aiohttp

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    work = iter(bearer)
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        for token in work:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as answer:
                await answer.read()
            latencies.append(time.perf_counter() - started)
            statuses[answer.status] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def _load_process(
    url: str, prefix: str, count: int, cycle: int | None, concurrency: int = CONCURRENCY
) -> dict[str, Any]:
    """Run the load generator as its own process; its JSON answer."""
    argv = [sys.executable, "-m", "bench.linker_bench", "load", url, prefix, str(count)]
    argv += [str(cycle or 0), str(TIME_LIMIT), str(concurrency)]
    answer = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if answer.returncode != 0:
        raise RuntimeError(answer.stderr[-2000:])
    return dict(json.loads(answer.stdout.strip().splitlines()[-1]))


async def run() -> dict[str, Any]:
    """Both endpoints against one linker process."""
    results: dict[str, Any] = {"workers": 1, "concurrency": CONCURRENCY}
    with servers() as s:
        await seed_links(s.database_url, LINKED_USERS, prefix="bench")
        async with standin() as (_, base):
            port = free_port()
            env = service_env(
                s,
                base,
                linker_port=port,
                jwt_secret=JWT_SECRET,
                telegram_bot_username="piwpiwtelegrambot",
            )
            linker = Process(["-m", "services.cli", "linker"], env, "linker")
            try:
                await eventually(lambda: _ready(port), 60, 0.2)
                for name, (path, count) in ENDPOINTS.items():
                    url = f"http://127.0.0.1:{port}{path}"
                    cycle = LINKED_USERS if name == "status" else None
                    prefix = "bench" if name == "status" else f"new-{name}"
                    # Warm up (imports, pools, caches) with users of their own, not counted.
                    await asyncio.to_thread(_load_process, url, f"warm-{name}", WARMUP, cycle)
                    cpu0 = linker.cpu_seconds()
                    result = await asyncio.to_thread(_load_process, url, prefix, count, cycle)
                    result["linker_cpu_ms_per_request"] = round(
                        (linker.cpu_seconds() - cpu0) * 1000 / max(1, result["requests"]), 3
                    )
                    ok = result["statuses"].get("200", 0)
                    assert ok == result["requests"], result
                    # One request at a time: the service time, without queueing.
                    alone = await asyncio.to_thread(
                        _load_process, url, f"{prefix}-alone", UNLOADED, cycle, 1
                    )
                    result["unloaded_p50_ms"] = alone["p50_ms"]
                    result["unloaded_p99_ms"] = alone["p99_ms"]
                    results[name] = result
                    console.print(name, result)
                results["linker_rss_mb"] = round(linker.rss_mb(), 1)
            finally:
                linker.stop()
    return results


async def _ready(port: int) -> bool:
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/readyz") as answer,
        ):
            return answer.status == 200
    except aiohttp.ClientError:
        return False


def main() -> dict[str, Any]:
    """Run, print and write bench/results/linker.json."""
    console.print("[bold]linker[/bold]: one uvicorn worker")
    result = asyncio.run(run())
    write_result("linker", result)
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["load"]:
        url, prefix, count, cycle, seconds, concurrency = sys.argv[2:8]
        bearer = tokens(prefix, int(count), int(cycle) or None)
        print(json.dumps(asyncio.run(load(url, bearer, float(seconds), int(concurrency)))))
    else:
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        main()
