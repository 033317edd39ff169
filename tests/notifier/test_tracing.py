"""Traces through the notifier (in-process, real RabbitMQ, PostgreSQL and stand-in, spans kept in
memory): one published event is one connected trace from the publisher's span through the consume,
render and delivery spans to the sendMessage request; the batch that planned it is a trace of its
own linked to each event's; the bot token is in no span; a refused chat is told to the linker in
the event's trace (and a failed request still ends as it would untraced); and a hostile
publisher's trace headers, whatever their type or text, never keep an event from being
delivered."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import aio_pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.tracing import TOKEN_MASK
from shared.contract import EXCHANGE, INTERNAL_EXCHANGE, new_event
from shared.publisher import to_message
from tests.infra import isolated_vhost
from tests.notifier.harness import Harness, running_notifier
from tests.support.bus import bound_queue
from tests.support.ids import new_chat_id, new_user
from tests.support.traces import Recorded, Span, in_trace, recording, text_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

TOKEN = f"424242:{uuid.uuid4().hex}"
"""A bot token shaped like Telegram's; the stand-in takes any."""
PUBLISH = "sns.events.post_success publish"
CONSUME = "sns.events.post_success process"
RENDER = "render post_success"
DELIVER = "deliver"
HTTP = "POST /bot{token}/sendMessage"
BATCH = "notifier.events batch"


@pytest.fixture(scope="module")
def recorded() -> Iterator[Recorded]:
    with recording() as spans:
        yield spans


@pytest.fixture(scope="module")
async def traced(
    recorded: Recorded, database_url: str, servers: Any
) -> AsyncIterator[tuple[Harness, Recorded]]:
    with isolated_vhost(servers) as rabbitmq_url:
        async with running_notifier(
            database_url, rabbitmq_url, telegram_bot_token=TOKEN, telegram_rate_per_chat=0
        ) as harness:
            yield harness, recorded


async def trace_of(recorded: Recorded, event_id: str, names: set[str]) -> dict[str, Span]:
    """The spans of the trace an event's publish started, once all of `names` are in it."""

    def complete() -> dict[str, Span] | None:
        spans = recorded.spans()
        publish = [
            s
            for s in spans
            if s.attributes.get("messaging.message.id") == event_id and not s.parent_id
        ]
        if not publish:
            return None
        found = in_trace(spans, publish[0].trace_id)
        return found if names <= found.keys() else None

    return await eventually(complete, 15, what=f"the spans {sorted(names)} of {event_id}")


async def test_one_event_is_one_connected_trace(traced: tuple[Harness, Recorded]) -> None:
    harness, recorded = traced
    user, chat = new_user(), new_chat_id()
    await harness.link(user, chat)
    event = await harness.publish("post_success", user, {"platform": "instagram", "likes": 3})
    await harness.wait_texts(chat, 1)

    spans = await trace_of(recorded, str(event.event_id), {PUBLISH, CONSUME, RENDER, DELIVER, HTTP})

    publish, consume = spans[PUBLISH], spans[CONSUME]
    assert publish.kind == "PRODUCER" and publish.parent_id is None
    assert consume.kind == "CONSUMER" and consume.parent_id == publish.span_id
    assert spans[RENDER].parent_id == consume.span_id
    assert spans[DELIVER].parent_id == consume.span_id
    assert spans[DELIVER].attributes["sns.delivery.status"] == "sent"
    http = spans[HTTP]
    assert http.kind == "CLIENT" and http.parent_id == spans[DELIVER].span_id
    assert http.attributes["http.response.status_code"] == 200
    assert http.attributes["url.full"].endswith(f"/bot{TOKEN_MASK}/sendMessage")
    assert http.attributes["server.address"] == "127.0.0.1"

    # The batch that planned it: a trace of its own, linked to the event's consume span, and
    # the render span links back to it.
    batch = next(
        s
        for s in recorded.spans()
        if s.name == BATCH and (consume.trace_id, consume.span_id) in s.links
    )
    assert batch.parent_id is None and batch.trace_id != consume.trace_id
    assert (batch.trace_id, batch.span_id) in spans[RENDER].links
    assert batch.attributes["messaging.batch.message_count"] >= 1


async def test_no_span_carries_the_bot_token(traced: tuple[Harness, Recorded]) -> None:
    harness, recorded = traced
    user, chat = new_user(), new_chat_id()
    await harness.link(user, chat)
    event = await harness.publish("post_failure", user, {"platform": "x", "error": "boom"})
    await harness.wait_texts(chat, 1)
    await trace_of(recorded, str(event.event_id), {"render post_failure", HTTP})
    secret = TOKEN.partition(":")[2]
    leaks = [s.name for s in recorded.spans() if secret in text_of(s)]
    assert not leaks


async def test_a_batch_links_to_every_event_it_planned(traced: tuple[Harness, Recorded]) -> None:
    harness, recorded = traced
    users = [(new_user(), new_chat_id()) for _ in range(5)]
    for user, chat in users:
        await harness.link(user, chat)
    events = [new_event("post_success", user, {"platform": "instagram"}) for user, _ in users]
    await harness.publisher.publish_many(events)
    for _, chat in users:
        await harness.wait_texts(chat, 1)
    consumes = [
        (await trace_of(recorded, str(e.event_id), {CONSUME, HTTP}))[CONSUME] for e in events
    ]
    linked = {link for s in recorded.spans() if s.name == BATCH for link in s.links}
    assert {(c.trace_id, c.span_id) for c in consumes} <= linked


async def test_a_chat_gone_is_told_to_the_linker_in_the_events_trace(
    traced: tuple[Harness, Recorded],
) -> None:
    harness, recorded = traced
    user, chat = new_user(), new_chat_id()
    await harness.link(user, chat)
    harness.standin.set_chat_state(chat, "blocked")
    connection = await aio_pika.connect(harness.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        queue = await bound_queue(channel, "telegram.blocked", exchange=INTERNAL_EXCHANGE)
        event = await harness.publish("post_success", user, {"platform": "instagram"})
        await harness.wait_delivery(event, "undeliverable")
        told = await eventually(lambda: queue.get(fail=False), 15, what="telegram.blocked")
        await told.ack()
    internal = "sns.telegram.internal.telegram.blocked publish"
    spans = await trace_of(recorded, str(event.event_id), {CONSUME, DELIVER, HTTP, internal})
    assert spans[internal].parent_id == spans[DELIVER].span_id
    assert spans[DELIVER].attributes["sns.delivery.status"] == "undeliverable"
    assert spans[HTTP].attributes["http.response.status_code"] == 403
    assert spans[HTTP].attributes["error.type"] == "chat_gone"
    # The linker's consume continues from the header.
    assert told.headers["traceparent"].split("-")[1:3] == [
        spans[internal].trace_id,
        spans[internal].span_id,
    ]


# -- a hostile publisher's trace headers ---------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)  # AMQP strings are UTF-8
HEADER_VALUE = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "00-" + "0" * 32 + "-" + "0" * 16 + "-01",  # all-zero ids: invalid
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # valid, from elsewhere
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # a forbidden version
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" + "x" * 10_000,
            "with_batch=true",  # faststream's batch marker, in baggage
            "k=" + "v" * 9000,
        ]
    ),
    st.binary(max_size=80).map(bytearray),  # an AMQP byte array
    st.datetimes(min_value=datetime(1970, 1, 2)),  # AMQP timestamps are unsigned
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, max_value=10**6, min_value=-(10**6)
    ),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    # AMQP floats are single precision; RabbitMQ closes the publisher's connection (541
    # INTERNAL_ERROR) on an infinite one, so such a header never reaches a consumer.
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(TEXT, st.integers(min_value=-(2**63), max_value=2**63 - 1)), max_size=3),
    st.dictionaries(st.text("abc", max_size=8), TEXT, max_size=3),
)
TRACE_HEADERS = st.dictionaries(
    st.sampled_from(["traceparent", "tracestate", "baggage"]), HEADER_VALUE, min_size=1
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(headers=TRACE_HEADERS)
async def test_garbage_trace_headers_never_stop_an_event(
    traced: tuple[Harness, Recorded], headers: dict[str, Any]
) -> None:
    harness, _ = traced
    user, chat = new_user(), new_chat_id()
    await harness.link(user, chat)
    event = new_event("post_success", user, {"platform": "instagram"})
    connection = await aio_pika.connect(harness.rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE)
        await exchange.publish(to_message(event, headers), routing_key="post_success")
    await harness.wait_delivery(event, "sent", timeout=15)
