"""Composition root of the notifier, only wiring and so kept in one module (~400 lines): broker
and its consumer, dead-lettering, bot, processor, health server and stall watch, shutdown (the
settings are `settings.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvloop
from fastapi import FastAPI
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage
from psycopg_pool import AsyncConnectionPool

from services.common import tracing
from services.common.callbacks import callback_key
from services.common.chat_ids import ChatIdCipher
from services.common.internal_events import InternalPublisher, internal_events_key
from services.common.logging import configure_logging, log_context
from services.common.telegram import bot_token, make_bot
from services.common.web import EmbeddedServer, broker_check, health_router, stop_on_signals
from services.notifier import metrics
from services.notifier.linker_events import PublishedInternalEvents
from services.notifier.notes import unreadable_letter
from services.notifier.ordering import DeliveryOrder
from services.notifier.processor import (
    Clock,
    Outcome,
    Processor,
    ProcessorConfig,
    exposure_bound,
    utc_now,
)
from services.notifier.ratelimit import RateLimiter
from services.notifier.retry import RetryPolicy
from services.notifier.settings import NotifierSettings
from services.notifier.store import NotifierStore, open_pool
from services.notifier.telegram import AiogramSender, TelegramSender
from services.notifier.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    declare,
    notifier_queue,
)
from shared.contract import (
    DEAD_LETTERED_AT_HEADER,
    DLQ_ERROR_HEADER,
    DLQ_REASON_HEADER,
    NOTIFICATION_TYPES,
    ORIGINAL_ROUTING_KEY_HEADER,
    DeadLetterReason,
    InvalidEvent,
    parse_event,
)

log = logging.getLogger("notifier")

STALLED = 1
"""Exit status after the notifier stopped itself because it made no progress."""


@dataclass
class Notifier:
    """The running notifier's parts."""

    settings: NotifierSettings
    pool: AsyncConnectionPool
    broker: RabbitBroker
    publisher: InternalPublisher
    """Signed `telegram.*` events for the linker, on the internal exchange."""
    processor: Processor
    sender: TelegramSender
    close_sender: Any
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the watchdog when the notifier made no progress for NOTIFIER_STALL_SECONDS."""
    releaser: asyncio.Task[None] | None = None
    """The loop sending held (quiet-hours) deliveries once they are due."""


def build(
    settings: NotifierSettings,
    *,
    sender: TelegramSender | None = None,
    close_sender: Any = None,
    clock: Clock = utc_now,
) -> Notifier:
    """Wire the notifier (connects nothing yet); `clock` decides quiet hours (tests fix it)."""
    pool = open_pool(settings.database_url.get_secret_value())
    broker = RabbitBroker(
        settings.rabbitmq_url.get_secret_value(),
        logger=None,
        graceful_timeout=settings.notifier_shutdown_seconds,
        # The handler takes the message itself (see `_whole_message`): no per-message dependency
        # injection, which would resolve the message context in a worker thread every time.
        apply_types=False,
        middlewares=tracing.broker_middlewares(),  # none unless tracing is on
    )
    publisher = InternalPublisher(
        settings.rabbitmq_url.get_secret_value(), internal_events_key(bot_token(settings))
    )
    if sender is None:
        bot = make_bot(settings, timeout=settings.telegram_timeout_seconds, limit=200)
        sender = AiogramSender(bot, allow_paid_broadcast=settings.telegram_allow_paid_broadcast)
        close_sender = bot.session.close
    processor = Processor(
        store=NotifierStore(pool),
        sender=sender,
        limiter=RateLimiter(
            settings.limits(), exposure=exposure_bound(settings.limits().global_per_second)
        ),
        chat_ids=ChatIdCipher(settings.encryption_keys()),
        internal_events=PublishedInternalEvents(publisher),
        config=ProcessorConfig(
            batch_size=settings.notifier_batch_size,
            batch_wait=settings.notifier_batch_wait_ms / 1000,
            retry=RetryPolicy(max_attempts=settings.notifier_max_attempts),
            release_interval=settings.notifier_release_interval_seconds,
            digest_min=settings.notifier_digest_min,
            digest_window=settings.notifier_digest_window_seconds,
        ),
        # Buttons are signed with a key derived from the bot token, which the linker also has.
        callback_key=callback_key(bot_token(settings)),
        clock=clock,
    )
    notifier = Notifier(settings, pool, broker, publisher, processor, sender, close_sender)
    subscribe(notifier)
    return notifier


def subscribe(notifier: Notifier) -> None:
    """Register the queue consumer on the broker."""
    broker = notifier.broker
    processor = notifier.processor
    order = DeliveryOrder()

    @broker.subscriber(
        notifier_queue(notifier.settings.notifier_delivery_limit),
        EVENTS_EXCHANGE,
        channel=Channel(prefetch_count=notifier.settings.notifier_prefetch),
        ack_policy=AckPolicy.MANUAL,
        decoder=_whole_message,
        no_reply=True,
        title="notifier.events",
        description="SNS events rendered and sent to each linked user's Telegram chat.",
    )
    async def on_event(message: RabbitMessage) -> None:
        tag = message.raw_message.delivery_tag or 0
        await order.wait_turn(tag)
        try:
            event, data = parse_event(message.body)
            if event.type not in NOTIFICATION_TYPES:
                raise InvalidEvent(f"type: {event.type} is not a notification type")
        except InvalidEvent as exc:
            order.done(tag)
            metrics.EVENTS.labels("invalid", "invalid").inc()
            processor.notes.dead_lettered(unreadable_letter(message.body, "invalid", str(exc)))
            await dead_letter(broker, message, "invalid", str(exc))
            return
        except Exception as exc:  # never leave a message unacknowledged and unexplained
            order.done(tag)
            log.exception("could not read message %s", message.message_id)
            await dead_letter(broker, message, "processing_error", f"{type(exc).__name__}: {exc}")
            return
        with log_context(event_id=str(event.event_id), user_id=event.user_id):
            outcome = processor.submit(event, data)
            order.done(tag)
            await settle(broker, message, await outcome)


async def _whole_message(message: RabbitMessage) -> RabbitMessage:
    """Decoder that hands the handler the message itself (body bytes, headers, delivery tag)."""
    return message


async def settle(broker: RabbitBroker, message: RabbitMessage, outcome: Outcome) -> None:
    """Acknowledge, or dead-letter with the reason."""
    if outcome.dead_letter is not None:
        await dead_letter(broker, message, outcome.dead_letter, outcome.reason or outcome.status)
    else:
        await message.ack()


async def dead_letter(
    broker: RabbitBroker, message: RabbitMessage, reason: DeadLetterReason, error: str
) -> None:
    """Publish the message as received to the DLQ with its reason (confirmed), then ack it."""
    raw = message.raw_message
    # The error may quote the event: a lone surrogate would make the header unencodable.
    error = error.encode("utf-8", "replace").decode("utf-8")[:2000]
    log.warning("dead-lettering message %s: %s: %s", message.message_id, reason, error[:500])
    metrics.DEAD_LETTERED.labels(reason).inc()
    headers = dict(raw.headers or {})
    headers.update(
        {
            DLQ_REASON_HEADER: reason,
            DLQ_ERROR_HEADER: error,
            ORIGINAL_ROUTING_KEY_HEADER: raw.routing_key or "",
            DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(),
        }
    )
    await broker.publish(
        raw.body,
        exchange=DEAD_LETTER_EXCHANGE,
        routing_key=raw.routing_key or NOTIFICATION_TYPES[0].value,
        headers=headers,
        message_id=message.message_id,
        content_type=raw.content_type,
        persist=True,
        mandatory=True,
    )
    await message.ack()


def pool_check(pool: AsyncConnectionPool) -> Any:
    """A readiness check running `SELECT 1` on the notifier's pool."""

    async def check() -> None:
        async with pool.connection(timeout=3) as conn:
            await conn.execute("SELECT 1")

    return check


def progress_check(notifier: Notifier) -> Any:
    """A health check that fails while the notifier is stalled (see `progress.py`)."""
    limit = notifier.settings.notifier_stall_seconds

    async def check() -> None:
        stalled = notifier.processor.stalled_for()
        if stalled >= limit:
            raise RuntimeError(
                f"no progress for {stalled:.0f} s with {notifier.processor.in_flight} "
                "events waiting"
            )

    return check


def health_app(notifier: Notifier) -> FastAPI:
    """The notifier's HTTP surface: /healthz, /readyz, /metrics. A stalled notifier is neither
    ready nor live."""
    app = FastAPI(title="notifier", docs_url=None, redoc_url=None, openapi_url=None)

    def broker_up() -> bool:
        connection = notifier.broker._connection  # faststream exposes no public state
        return connection is not None and not connection.is_closed

    progress = progress_check(notifier)
    app.include_router(
        health_router(
            {
                "database": pool_check(notifier.pool),
                "broker": broker_check(broker_up),
                "progress": progress,
            },
            live={"progress": progress},
        )
    )
    return app


async def watch_progress(notifier: Notifier, every: float = 1.0) -> None:
    """Set `notifier.stalled` once no progress was made for NOTIFIER_STALL_SECONDS while
    events waited."""
    limit = notifier.settings.notifier_stall_seconds
    while not notifier.stalled.is_set():
        await asyncio.sleep(min(every, limit / 4))
        stalled = notifier.processor.stalled_for()
        if stalled >= limit:
            log.error(
                "no progress for %.0f s with %d events waiting: stopping, so the messages go "
                "back to RabbitMQ for the standby consumer",
                stalled,
                notifier.processor.in_flight,
            )
            notifier.stalled.set()


async def start(notifier: Notifier) -> None:
    """Connect, declare the topology and start consuming."""
    await notifier.pool.open()
    await notifier.publisher.connect()
    await notifier.broker.connect()
    await declare(notifier.broker, notifier.settings.notifier_delivery_limit)
    await notifier.broker.start()
    notifier.stopping.clear()
    notifier.releaser = asyncio.create_task(notifier.processor.release_loop(notifier.stopping))


async def stop(notifier: Notifier, *, drain: bool = True) -> None:
    """Stop consuming, let in-flight messages finish (bounded), close everything.

    The subscriber waits up to NOTIFIER_SHUTDOWN_SECONDS for running handlers; whatever is left
    is aborted, and its unacknowledged messages go back to the queue when the channel closes.
    Without `drain` (a stalled notifier: waiting would change nothing) it is aborted at once.
    """
    consuming = asyncio.gather(*(s.stop() for s in notifier.broker.subscribers))
    while not drain and not consuming.done():
        # Handlers wait for outcomes that will not come: end them now (messages stay unacked).
        notifier.processor.abort()
        await asyncio.wait([consuming], timeout=0.05)
    await consuming
    if notifier.releaser is not None:
        # A release in progress finishes (its rows are locked until their results are written);
        # past the deadline it is cancelled and its rows stay held for the next start.
        notifier.stopping.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(notifier.settings.notifier_shutdown_seconds * drain):
                await asyncio.shield(notifier.releaser)
        notifier.releaser.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await notifier.releaser
        notifier.releaser = None
    if notifier.processor.in_flight:
        log.warning(
            "%d events still in flight at shutdown: left for redelivery",
            notifier.processor.in_flight,
        )
        notifier.processor.abort()
    await notifier.broker.stop()
    await notifier.publisher.close()
    if notifier.close_sender is not None:
        await notifier.close_sender()
    await notifier.processor.close()
    await notifier.pool.close()


async def serve(settings: NotifierSettings) -> bool:
    """Run until SIGTERM/SIGINT, or until it stalls; True if it stopped because it stalled."""
    notifier = build(settings)
    server = EmbeddedServer.serving(health_app(notifier), "0.0.0.0", settings.notifier_port)
    stopping = stop_on_signals()
    await start(notifier)
    http = asyncio.create_task(server.serve())
    watchdog = asyncio.create_task(watch_progress(notifier))
    log.info("notifier consuming %s", ", ".join(t.value for t in NOTIFICATION_TYPES))
    stop_requested = asyncio.create_task(stopping.wait())
    await asyncio.wait(
        [stop_requested, asyncio.create_task(notifier.stalled.wait())],
        return_when=asyncio.FIRST_COMPLETED,
    )
    log.info("stopping: no new messages; finishing in-flight ones")
    watchdog.cancel()
    await stop(notifier, drain=not notifier.stalled.is_set())
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await http
    return notifier.stalled.is_set()


def run() -> None:
    """Entry point of `sns-telegram notifier`."""
    settings = NotifierSettings()
    configure_logging(settings.log_level, settings.log_format)
    settings.validate_for_production()
    tracing.setup("notifier")
    # uvloop: the notifier's hot path is event-loop bound (AMQP frames, HTTP, PostgreSQL).
    tune_gc()
    if uvloop.run(serve(settings)):
        raise SystemExit(STALLED)


def tune_gc() -> None:
    """Fewer, later garbage collections on the hot path.

    Every event allocates a few thousand short-lived objects; with CPython's default threshold
    (700) the collector ran hundreds of times a second (CPU per event 0.9-1.1 ms, ~0.73 ms after).
    What is alive after start-up is frozen out of the scans; cyclic garbage is still collected,
    in larger rounds (in the 100,000-event memory benchmark RSS levels off after ~30,000 events).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
