"""`sns-telegram linker` as a real process writes only our log lines: one JSON object per line,
with no raw control character, even for a hostile request id, a hostile event from the bus, or
a bus handler failing on a message with a hostile message id (logged by faststream)."""

from __future__ import annotations

import json
from pathlib import Path

import aio_pika
import httpx
import psycopg
import pytest

from services.common.internal_events import SIGNATURE_HEADER, internal_events_key, signature
from services.common.telegram import DEV_BOT_TOKEN
from shared.contract import INTERNAL_EXCHANGE, LINKER_DLQ, EventType, new_event
from shared.db import libpq_url
from tests.linker.helpers import bearer
from tests.linker.test_e2e import processes, standin_and_linker
from tests.ops.helpers import wait_size
from tests.support.ids import new_user
from tests.unit.unsafe import raw_unsafe

pytestmark = pytest.mark.e2e

__all__ = ["processes"]  # the fixture

HOSTILE = '\x1b[2J\x1b[H\x9b31m\u202eexe.txt\r\n{"level": "info"}'


async def test_every_line_the_linker_writes_is_one_safe_json_record(
    fresh_database_url, rabbitmq_url, processes, tmp_path: Path
):
    database_url = fresh_database_url
    _, linker = await standin_and_linker(processes, tmp_path, database_url, rabbitmq_url)
    linker_url, linker_log = linker.url(), linker.log_path

    async with httpx.AsyncClient(base_url=linker_url, timeout=10) as api:
        # What HTTP lets through: bytes 0x80-0xff, read as latin-1 (0x9b is the 8-bit CSI).
        hostile_id = b'\x9b2J\x9bH\xe2\x80\xae{"level": "info"}'
        headers = {**bearer(new_user()), "x-request-id": hostile_id}
        issued = await api.get("/api/telegram/link-account", headers=headers)
        assert issued.status_code == 200
        assert issued.headers["x-request-id"].isalnum()
    # The bus handler fails on the next event (its table is gone): faststream logs that, with
    # the message id, through the linker's logging.
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("ALTER TABLE telegram_links RENAME TO telegram_links_gone")
    failing = new_event(
        EventType.TELEGRAM_BLOCKED, new_user(), {"reason": HOSTILE, "error_code": 403}
    )
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(INTERNAL_EXCHANGE)
        key = internal_events_key(DEV_BOT_TOKEN)  # signed as our notifier signs them
        for body in (
            json.dumps({"type": "telegram.blocked", "data": HOSTILE}).encode(),
            failing.to_json(),
        ):
            headers = {"x-request-id": HOSTILE, SIGNATURE_HEADER: signature(key, body)}
            await exchange.publish(
                aio_pika.Message(body, message_id=HOSTILE[:60], headers=headers),
                routing_key=EventType.TELEGRAM_BLOCKED.value,
            )
    await wait_size(rabbitmq_url, LINKER_DLQ, 2)  # invalid at once; failing at the limit
    assert linker.stop(20) == 0

    logged = linker_log.read_bytes().decode("utf-8")
    assert raw_unsafe(logged, allow="\n") == [], logged
    records = [json.loads(line) for line in logged.splitlines()]  # every line is a record
    assert any(r["msg"] == "link token issued" for r in records)
    assert any(r["msg"].startswith("invalid event rejected") for r in records)
    assert any("telegram_links" in r["msg"] and r["level"] == "error" for r in records)
