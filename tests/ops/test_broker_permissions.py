"""`sns-telegram broker-permissions` against the real RabbitMQ: a platform publisher can publish
events, and cannot write to (or read, or declare) the internal exchange where the notifier tells
the linker to pause or move a link."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.parse
import uuid

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from services.cli import main
from services.ops.permissions import ONLY_EVENTS
from shared.contract import INTERNAL_EXCHANGE, EventType, new_event
from shared.publisher import EventPublisher
from tests.ops.helpers import declare_topology

pytestmark = pytest.mark.integration


def as_user(url: str, user: str, password: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    netloc = f"{user}:{password}@{parsed.hostname}:{parsed.port or 5672}"
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer that never gets anything (its subscription is refused)."""


@pytest.fixture
def publisher_account(servers):
    if servers.management is None:
        pytest.fail("RabbitMQ's management plugin is needed (rabbitmq-plugins enable ...)")
    user = f"platform-{uuid.uuid4().hex[:8]}"
    yield user, uuid.uuid4().hex
    with contextlib.suppress(urllib.error.HTTPError):  # not created by every test
        servers.management("DELETE", f"/api/users/{user}", None)


async def test_a_platform_publisher_writes_events_and_nothing_internal(
    rabbitmq_url, publisher_account, monkeypatch, capsys
):
    await declare_topology(rabbitmq_url, linker=True)
    user, password = publisher_account
    monkeypatch.setenv("RABBITMQ_URL", rabbitmq_url)
    monkeypatch.setenv("RABBITMQ_PUBLISHER_PASSWORD", password)
    code = await asyncio.to_thread(main, ["broker-permissions", "--publisher", user])
    assert code == 0, capsys.readouterr().err
    assert f"write {ONLY_EVENTS!r}" in capsys.readouterr().out
    platform_url = as_user(rabbitmq_url, user, password)

    # What the platform does: publish with the shared publisher (it declares sns.events).
    async with EventPublisher(platform_url) as publisher:
        await publisher.send("post_success", "u1", {"platform": "instagram"})

    blocked = new_event(EventType.TELEGRAM_BLOCKED, "u1", {"reason": "x", "error_code": 403})
    connection = await aio_pika.connect(platform_url)
    async with connection:
        for attempt in ("publish", "declare", "consume"):
            channel = await connection.channel(publisher_confirms=True)
            with pytest.raises(ChannelAccessRefused):
                if attempt == "publish":
                    exchange = await channel.get_exchange(INTERNAL_EXCHANGE, ensure=False)
                    await exchange.publish(
                        aio_pika.Message(blocked.to_json()), routing_key=blocked.type.value
                    )
                elif attempt == "declare":
                    await channel.declare_exchange(
                        INTERNAL_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
                    )
                else:
                    queue = await channel.get_queue("linker.events", ensure=False)
                    await queue.consume(ignore)
    # Running it again changes nothing and still succeeds (idempotent).
    assert await asyncio.to_thread(main, ["broker-permissions", "--publisher", user]) == 0


async def test_a_missing_publisher_without_a_password_is_a_clear_error(
    rabbitmq_url, publisher_account, monkeypatch, capsys
):
    user, _ = publisher_account
    monkeypatch.setenv("RABBITMQ_URL", rabbitmq_url)
    monkeypatch.delenv("RABBITMQ_PUBLISHER_PASSWORD", raising=False)
    assert await asyncio.to_thread(main, ["broker-permissions", "--publisher", user]) == 1
    assert "RABBITMQ_PUBLISHER_PASSWORD" in capsys.readouterr().err
