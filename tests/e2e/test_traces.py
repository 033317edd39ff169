"""Traces across processes: an event published here (spans kept in memory) is continued by a real
notifier process exporting over OTLP to a receiver in this test, in one trace down to the
sendMessage request, with the bot token nowhere in what it sent; and a notifier started without
`OTEL_EXPORTER_OTLP_ENDPOINT` sends nothing at all."""

from __future__ import annotations

import os
import uuid

import pytest

from services.standin.server import StandIn
from shared.publisher import EventPublisher
from tests.support.ids import new_chat_id, new_user
from tests.support.links import seed_links
from tests.support.processes import Service, our_service, service_env
from tests.support.traces import OtlpReceiver, in_trace, recording
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

TOKEN = f"515151:{uuid.uuid4().hex}"
NOTIFIER_SPANS = {
    "sns.events.post_success process",
    "render post_success",
    "deliver",
    "POST /bot{token}/sendMessage",
}


def notifier(database_url: str, rabbitmq_url: str, api_base: str, log_dir, **settings) -> Service:
    """A notifier process with none of this environment's OTEL_* variables, only `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= service_env(database_url, rabbitmq_url, api_base, telegram_bot_token=TOKEN, **settings)
    return our_service("notifier", env, log_dir, "notifier", inherit=False)


async def test_one_published_event_is_one_trace_across_processes(
    database_url: str, rabbitmq_url: str, tmp_path
) -> None:
    user, chat = new_user(), new_chat_id()
    await seed_links(database_url, [(user, chat)])
    with OtlpReceiver() as receiver, recording() as recorded:
        async with StandIn() as standin:
            process = notifier(
                database_url, rabbitmq_url, standin.base_url, tmp_path,
                otel_exporter_otlp_endpoint=receiver.endpoint,
                otel_bsp_schedule_delay=50,
            ).start()  # fmt: skip
            try:
                await process.wait_ready()
                async with EventPublisher(rabbitmq_url) as publisher:
                    event = await publisher.send("post_success", user, {"platform": "instagram"})
                await standin.wait_for_messages(chat, 1, timeout=30)
                (publish,) = [
                    s
                    for s in recorded.spans()
                    if s.attributes.get("messaging.message.id") == str(event.event_id)
                ]

                def continued() -> dict | None:
                    found = in_trace(receiver.spans(), publish.trace_id)
                    return found if found.keys() >= NOTIFIER_SPANS else None

                spans = await eventually(continued, 20, what="the notifier's spans")
            finally:
                process.stop(15)
    consume = spans["sns.events.post_success process"]
    assert consume.parent_id == publish.span_id
    assert {s.service for s in spans.values()} == {"sns-telegram-notifier"}
    assert spans["POST /bot{token}/sendMessage"].parent_id == spans["deliver"].span_id
    secret = TOKEN.partition(":")[2].encode()
    assert not [body for body in receiver.bodies if secret in body]
    assert "Traceback" not in process.log_text()


async def test_without_the_endpoint_nothing_is_exported(
    database_url: str, rabbitmq_url: str, tmp_path
) -> None:
    user, chat = new_user(), new_chat_id()
    await seed_links(database_url, [(user, chat)])
    with OtlpReceiver() as receiver, recording():
        async with StandIn() as standin:
            # Everything but the endpoint: what would be used if tracing were on.
            process = notifier(
                database_url, rabbitmq_url, standin.base_url, tmp_path,
                otel_bsp_schedule_delay=50,
                otel_exporter_otlp_traces_protocol="http/protobuf",
            ).start()  # fmt: skip
            try:
                await process.wait_ready()
                async with EventPublisher(rabbitmq_url) as publisher:
                    await publisher.send("post_success", user, {"platform": "instagram"})
                await standin.wait_for_messages(chat, 1, timeout=30)
            finally:
                assert process.stop(15) == 0  # the exit would flush any buffered span
    assert receiver.bodies == []
    assert "tracing on" not in process.log_text()
