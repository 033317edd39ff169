"""Helpers for the scheduler's integration tests: links, a scheduler replica, an observing queue."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler.clock import FixedClock
from services.scheduler.job import DailySummaryJob
from services.scheduler.main import build_engine, build_job, build_publisher
from services.scheduler.settings import SchedulerSettings
from shared.contract import DailySummaryData, Event, EventType, parse_event
from shared.publisher import EventPublisher
from tests.support.bus import bound_queue
from tests.support.jwts import make_jwt
from tests.support.links import seed_links
from tests.support.waiting import eventually

JWT_SECRET = "scheduler-tests-secret-0123456789abcdef"


def utc(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


def make_settings(database_url: str, rabbitmq_url: str, **overrides: Any) -> SchedulerSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "rabbitmq_url": rabbitmq_url,
        "jwt_secret": JWT_SECRET,
        "jwt_algorithms": ["HS256"],
        "scheduler_publish_timeout_seconds": 3,
        "scheduler_tick_seconds": 10,
        **overrides,
    }
    return SchedulerSettings(**values)


def token(roles: Iterable[str] = ("admin",), *, sub: str = "admin-1", expires_in: int = 300) -> str:
    return make_jwt(sub, JWT_SECRET, roles=roles, expires_in=expires_in)


async def put_link(
    engine: AsyncEngine,
    user_id: str,
    *,
    timezone: str = "UTC",
    summary_time: time = time(9),
    enabled: bool = True,
    chat_id: str | None = "100200300",
    muted: Iterable[str] = (),
) -> None:
    """Insert or update a link row the way the linker would (what is not given: the default)."""
    await seed_links(
        engine,
        [(user_id, chat_id)],
        enabled=enabled,
        timezone=timezone,
        summary_time=summary_time,
        language="ko",
        muted_types=list(muted),
    )


async def put_links(engine: AsyncEngine, user_ids: Iterable[str], **kwargs: Any) -> None:
    for user_id in user_ids:
        await put_link(engine, user_id, **kwargs)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


@dataclass
class Replica:
    """One scheduler replica in-process: its own engine, publisher and (fixed) clock."""

    job: DailySummaryJob
    engine: AsyncEngine
    publisher: EventPublisher
    clock: FixedClock
    settings: SchedulerSettings

    async def close(self) -> None:
        await self.publisher.close()
        await self.engine.dispose()


async def start_replica(
    settings: SchedulerSettings, now: datetime, *, name: str = "replica", connect: bool = True
) -> Replica:
    engine = build_engine(settings)
    publisher = build_publisher(settings)
    if connect:
        await publisher.connect()
    clock = FixedClock(now)
    job = build_job(settings, engine, publisher, clock, instance=name)
    return Replica(job, engine, publisher, clock, settings)


@dataclass(frozen=True)
class Trigger:
    event: Event
    data: DailySummaryData
    message: AbstractIncomingMessage


class Observer:
    """A queue bound to `daily_summary` on `sns.events`, standing in for the notifier's."""

    def __init__(self, connection: AbstractRobustConnection, queue: AbstractQueue) -> None:
        self.connection = connection
        self.queue = queue

    @classmethod
    async def bind(cls, rabbitmq_url: str) -> Observer:
        connection = await aio_pika.connect_robust(rabbitmq_url)
        channel = await connection.channel()
        queue = await bound_queue(
            channel, EventType.DAILY_SUMMARY.value, name="scheduler-test-observer"
        )
        return cls(connection, queue)

    async def take(self, expected: int, timeout: float = 15.0) -> list[Trigger]:
        """Wait (with a deadline) for `expected` triggers, then check no more are queued."""
        received: list[Trigger] = []

        async def arrived() -> bool:
            message = await self.queue.get(fail=False, timeout=5)
            if message is not None:
                received.append(self._parse(message))
                await message.ack()
            return len(received) >= expected

        try:
            await eventually(arrived, timeout)
        except AssertionError:
            raise AssertionError(f"got {len(received)} triggers, expected {expected}") from None
        extra = await self.queue.get(fail=False, timeout=5)
        if extra is not None:
            raise AssertionError(f"an unexpected extra trigger: {extra.body!r}")
        return received

    @staticmethod
    def _parse(message: AbstractIncomingMessage) -> Trigger:
        event, data = parse_event(message.body)
        assert isinstance(data, DailySummaryData)
        return Trigger(event, data, message)

    async def close(self) -> None:
        await self.connection.close()


def via_port(amqp_url: str, port: int) -> str:
    """The same AMQP URL (vhost, credentials) but to 127.0.0.1:`port`."""
    parsed = urllib.parse.urlsplit(amqp_url)
    userinfo = parsed.netloc.rsplit("@", 1)[0]
    return urllib.parse.urlunsplit(parsed._replace(netloc=f"{userinfo}@127.0.0.1:{port}"))


class TcpProxy:
    """A TCP relay to RabbitMQ that a test can cut (broker unreachable) and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update({writer, up_writer})


def changed(settings: SchedulerSettings, **overrides: Any) -> SchedulerSettings:
    """A validated copy of `settings` with some values replaced."""
    return SchedulerSettings(**{**settings.model_dump(), **overrides})
