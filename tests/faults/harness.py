"""What the fault tests share: our services as real processes (tests/support/processes.py), a
reliable publisher, counting deliveries at the stand-in, server outages, and the report.

Every test publishes events whose text carries a unique mark (`<tag> #<i>`), lets a fault happen,
waits (on conditions, with deadlines) until the system has settled, then counts each mark among
the messages the stand-in accepted: lost = marks never seen, duplicated = extra copies.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import psycopg

from services.standin.client import StandInClient
from shared.contract import NOTIFIER_DLQ, NOTIFIER_QUEUE, Event, new_event
from shared.db import libpq_url
from shared.publisher import EventPublisher, PublishError
from tests.support.ids import new_chat_id
from tests.support.processes import Service, our_service, service_env
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
JWT_SECRET = "faults-secret-0123456789abcdef-0123456789"
FINAL_STATUSES = ("sent", "skipped", "uncertain", "undeliverable")

REPORT_LINES: list[str] = []
"""Summary lines of this session's fault tests (printed at the end of the run)."""


def quick() -> bool:
    """FAULTS_QUICK=1: smaller streams, for a quick look (the full suite takes ~6.5 minutes)."""
    return os.environ.get("FAULTS_QUICK") == "1"


def size(full: int, small: int) -> int:
    """`full`, or `small` under FAULTS_QUICK=1."""
    return small if quick() else full


# -- processes -------------------------------------------------------------------------------


SETTINGS = {
    "telegram_bot_username": "piwpiwtelegrambot",
    "jwt_secret": JWT_SECRET,
    "log_format": "json",
    "log_level": "INFO",
}
"""What every service of a fault test runs with, besides its servers and the stand-in."""


def notifier(
    database_url: str, rabbitmq_url: str, api_base: str, log_dir: Path, name: str, **extra: Any
) -> Service:
    """A notifier process (not started); `extra` are its settings (e.g. telegram_rate_global)."""
    env = service_env(database_url, rabbitmq_url, api_base, **SETTINGS | extra)
    return our_service("notifier", env, log_dir, name)


@asynccontextmanager
async def notifier_up(
    database_url: str, rabbitmq_url: str, api_base: str, log_dir: Path, **extra: Any
) -> AsyncIterator[Service]:
    """A notifier process, started and ready. When the block ends it must still be up (the
    faults did not take it down) and stop cleanly, exit status 0 (its log's end says why not)."""
    service = notifier(database_url, rabbitmq_url, api_base, log_dir, "notifier", **extra)
    service.start()
    try:
        await service.wait_ready()
        yield service
        assert service.alive, service.log_text()[-3000:]
    finally:
        code = service.stop()
    assert code == 0, service.log_text()[-3000:]


def scheduler(
    database_url: str, rabbitmq_url: str, api_base: str, log_dir: Path, name: str, **extra: Any
) -> Service:
    """A scheduler process (not started)."""
    env = service_env(database_url, rabbitmq_url, api_base, **SETTINGS | extra)
    return our_service("scheduler", env, log_dir, name)


# -- data ------------------------------------------------------------------------------------


async def execute(database_url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh connection (survives a PostgreSQL restart); its rows."""
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as conn:
        cursor = await conn.execute(sql, params)  # type: ignore[arg-type]
        return list(await cursor.fetchall()) if cursor.description else []


def make_users(count: int, tag: str) -> list[tuple[str, int]]:
    """`count` (user id `<tag>-u<i>`, chat id) pairs unique to this test."""
    return [(f"{tag}-u{i}", new_chat_id()) for i in range(count)]


@dataclass
class Marked:
    """Events whose message text carries `<tag> #<i>`, and how to find them again."""

    tag: str
    events: list[Event]
    by_id: dict[uuid.UUID, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {e.event_id: i for i, e in enumerate(self.events)}
        self.pattern = re.compile(re.escape(self.tag) + r" #(\d+)\b")

    def index(self, text: str) -> int | None:
        found = self.pattern.search(text)
        return int(found.group(1)) if found else None


def marked_events(tag: str, users: Sequence[tuple[str, int]], count: int) -> Marked:
    """`count` post_failure events spread over `users`, each with its mark in the error text."""
    events = [
        new_event(
            "post_failure", users[i % len(users)][0], {"platform": "x", "error": f"{tag} #{i}"}
        )
        for i in range(count)
    ]
    return Marked(tag, events)


# -- publishing ------------------------------------------------------------------------------


@dataclass
class PublishStats:
    published: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


async def publish_reliably(
    rabbitmq_url: str,
    events: Iterable[Event],
    *,
    rate: float | None = None,
    window: int = 50,
    deadline: float = 180,
    stats: PublishStats | None = None,
) -> PublishStats:
    """Publish every event with confirms, as a platform service must: retry each until the
    broker confirms it (a broker restart makes some publishes fail; a retry after a lost
    confirm may publish an event twice, which the notifier's inbox absorbs)."""
    stats = stats or PublishStats()
    queue = list(events)
    started = time.monotonic()
    end = started + deadline
    position = 0
    publisher = EventPublisher(rabbitmq_url, timeout=5)
    while True:
        try:
            await publisher.connect()
            break
        except Exception as exc:
            if time.monotonic() > end:
                raise
            stats.errors.append(repr(exc))
            await asyncio.sleep(0.5)

    async def worker() -> None:
        nonlocal position
        while position < len(queue):
            i = position
            position += 1
            if rate:
                due = started + i / rate
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
            while True:
                try:
                    await publisher.publish(queue[i])
                    stats.published += 1
                    break
                except PublishError as exc:
                    stats.retries += 1
                    if len(stats.errors) < 20:
                        stats.errors.append(str(exc)[:300])
                    assert time.monotonic() < end, f"could not publish: {exc}"
                    await asyncio.sleep(0.25)

    try:
        await asyncio.gather(*(worker() for _ in range(window)))
    finally:
        try:
            await publisher.close()
        except Exception as exc:  # the broker may have just restarted under it
            stats.errors.append(f"close: {exc!r}")
    return stats


async def queue_depth(rabbitmq_url: str, name: str = NOTIFIER_QUEUE) -> int:
    """Messages ready in a queue (not counting unacknowledged ones)."""
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def drain_dlq(rabbitmq_url: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take every message out of the notifier's DLQ."""
    got = []
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(NOTIFIER_DLQ)
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            got.append(message)
    return got


async def topology_declared(rabbitmq_url: str) -> bool:
    """True once the notifier has declared its queue."""
    try:
        await queue_depth(rabbitmq_url)
        return True
    except Exception:
        return False


# -- counting --------------------------------------------------------------------------------


@dataclass
class Tally:
    """How many times each marked event reached the stand-in."""

    expected: int
    counts: Counter[int]

    @property
    def lost(self) -> list[int]:
        return [i for i in range(self.expected) if self.counts[i] == 0]

    @property
    def duplicated(self) -> dict[int, int]:
        """Event index -> extra copies."""
        return {i: n - 1 for i, n in self.counts.items() if n > 1}

    @property
    def extra(self) -> int:
        return sum(self.duplicated.values())


async def all_bot_messages(client: StandInClient) -> list[dict[str, Any]]:
    """Every message the bot sent, in arrival order."""
    out: list[dict[str, Any]] = []
    cursor = 0
    while True:
        cursor, batch = await client.sent(since=cursor, limit=10000)
        out.extend(batch)
        if not batch:
            return out


async def tally(client: StandInClient, marked: Marked) -> Tally:
    """Count each marked event among the stand-in's accepted messages."""
    counts: Counter[int] = Counter()
    for message in await all_bot_messages(client):
        index = marked.index(message["text"])
        if index is not None:
            counts[index] += 1
    return Tally(len(marked.events), counts)


async def delivered_count(client: StandInClient, marked: Marked) -> int:
    """Distinct marked events the stand-in has accepted so far."""
    return len((await tally(client, marked)).counts)


async def processed_count(database_url: str, marked: Marked) -> int:
    """Marked events whose processing is finished and recorded."""
    rows = await execute(
        database_url,
        "SELECT count(*) FROM processed_events WHERE event_id = ANY(%s)",
        (list(marked.by_id),),
    )
    return int(rows[0][0])


async def settled(database_url: str, rabbitmq_url: str, marked: Marked) -> bool:
    """Every marked event processed and recorded, and the queue empty."""
    return await processed_count(database_url, marked) == len(marked.events) and (
        await queue_depth(rabbitmq_url) == 0
    )


async def until_settled(
    database_url: str,
    rabbitmq_url: str,
    marked: Marked,
    timeout: float,
    what: str,
    interval: float = 0.25,
) -> None:
    """Wait until `settled`; after `timeout` seconds fail, saying `what` did not happen."""
    await eventually(lambda: settled(database_url, rabbitmq_url, marked), timeout, interval, what)


# -- server outages --------------------------------------------------------------------------


def _local(url: str) -> bool:
    host = urllib.parse.urlsplit(url.replace("+psycopg", "")).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def rabbitmq_restartable(rabbitmq_url: str) -> str | None:
    """Why this test cannot restart RabbitMQ, or None when it can."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not on PATH"
    if not _local(rabbitmq_url):
        return "RabbitMQ is not local"
    return None


def postgres_cluster() -> str | None:
    """The local cluster version (`ls /etc/postgresql`), or None."""
    if shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[-1] if versions else None


def postgres_restartable(database_url: str) -> str | None:
    """Why this test cannot restart PostgreSQL, or None when it can."""
    if postgres_cluster() is None:
        return "pg_ctlcluster or /etc/postgresql is missing"
    if not _local(database_url):
        return "PostgreSQL is not local"
    return None


async def run(*argv: str, timeout: float = 120) -> None:
    """Run a command without blocking the event loop; fail with its output."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{' '.join(argv)}: no answer in {timeout} s") from None
    assert process.returncode == 0, f"{' '.join(argv)}: {out.decode(errors='replace')}"


async def _amqp_answers(rabbitmq_url: str) -> bool:
    try:
        connection = await aio_pika.connect(rabbitmq_url, timeout=3)
    except Exception:
        return False
    await connection.close()
    return True


def _management_answers() -> bool:
    base = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
    try:
        return httpx.get(f"{base}/api/overview", auth=("guest", "guest"), timeout=2).is_success
    except httpx.HTTPError:
        return False


async def rabbitmq_back(rabbitmq_url: str, management: bool) -> None:
    """Wait until the broker takes AMQP connections again (and, if it had one, until its
    management API answers: other tests create their vhosts with it)."""
    await run("rabbitmqctl", "await_startup", timeout=180)
    await eventually(lambda: _amqp_answers(rabbitmq_url), 120, 0.25, "RabbitMQ answering")
    if management:
        await eventually(_management_answers, 120, 0.25, "RabbitMQ management answering")


@asynccontextmanager
async def rabbitmq_stopped(rabbitmq_url: str) -> AsyncIterator[None]:
    """Stop the RabbitMQ application (the node stays up), and start it again on exit, even when
    the test fails; returns once it answers again. Every client connection is dropped."""
    management = _management_answers()
    try:
        await run("rabbitmqctl", "stop_app", timeout=120)
        yield
    finally:
        await run("rabbitmqctl", "start_app", timeout=180)
        await rabbitmq_back(rabbitmq_url, management)


async def _postgres_answers(database_url: str) -> bool:
    try:
        await execute(database_url, "SELECT 1")
        return True
    except psycopg.Error:
        return False


@asynccontextmanager
async def postgres_stopped(database_url: str) -> AsyncIterator[None]:
    """Stop the local PostgreSQL cluster (fast mode: sessions are cut), and start it again on
    exit, even when the test fails; returns once it answers again."""
    version = postgres_cluster()
    assert version is not None
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    try:
        await run(*ctl, "stop", "-m", "fast", timeout=120)
        yield
    finally:
        await run(*ctl, "start", timeout=120)
        await eventually(lambda: _postgres_answers(database_url), 120, 0.2, "PostgreSQL answering")


# -- the report ------------------------------------------------------------------------------


def report(test: str, *, events: int, faults: int, lost: int, duplicated: int, **more: Any) -> None:
    """Print the test's summary line and keep its numbers in bench/results/faults.json."""
    line = f"{test}: events={events} faults={faults} lost={lost} duplicated={duplicated}" + "".join(
        f" {k}={v}" for k, v in more.items()
    )
    print(line)
    REPORT_LINES.append(line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "faults.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data.setdefault("benchmark", "faults")
    data["quick_sizes"] = quick()
    tests = data.setdefault("tests", {})
    tests[test] = {
        "events": events,
        "faults": faults,
        "lost": lost,
        "duplicated": duplicated,
        **more,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
