"""A corpus of malformed events between valid ones: the notifier keeps running, each bad message
lands in `notifier.events.dlq` with its reason (x-dlq-reason, x-dlq-error), hostile content is
delivered escaped, and every valid event around them is delivered once."""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest

from shared.contract import DLQ_ERROR_HEADER, DLQ_REASON_HEADER, MAX_EVENT_BYTES
from tests.faults.harness import (
    drain_dlq,
    make_users,
    marked_events,
    notifier_up,
    queue_depth,
    report,
    tally,
)
from tests.support.bus import publish_raw
from tests.support.links import seed_links
from tests.support.standin import standin_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

TEN_MB = 10 * 1024 * 1024


@dataclass
class Bad:
    """A message the notifier must dead-letter as `invalid`, with `error` in x-dlq-error."""

    name: str
    body: bytes
    error: str
    routing_key: str = "post_success"


@dataclass
class Hostile:
    """A valid event with nasty content: delivered, its text shown as given (minus `dropped`)."""

    name: str
    data: dict[str, Any]
    shown: str
    sent_html: str
    type: str = "post_success"


def envelope(user: str, **changes: Any) -> dict[str, Any]:
    event = {
        "event_id": str(uuid.uuid4()),
        "type": "post_success",
        "user_id": user,
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": {"platform": "instagram", "content": "fine", "likes": 1, "comments": 2},
    }
    event.update(changes)
    return event


def without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def corpus(user: str) -> tuple[list[Bad], list[Hostile]]:
    def js(value: Any) -> bytes:
        return json.dumps(value).encode()

    good = envelope(user)
    bad = [
        Bad("truncated JSON", b'{"event_id": "', "not valid JSON"),
        Bad("not UTF-8", b"\xff\xfe\x00{", "not valid JSON"),
        Bad("empty body", b"", "not valid JSON"),
        Bad("JSON array", b"[1, 2, 3]", "must be a JSON object"),
        Bad("JSON string", b'"post_success"', "must be a JSON object"),
        Bad("deeply nested JSON", b"[" * 100_000, "JSON"),
        Bad("huge integer", b'{"likes": ' + b"9" * 5000 + b"}", "not valid JSON"),
        Bad("missing user_id", js(without(good, "user_id")), "user_id"),
        Bad("missing event_id", js(without(good, "event_id")), "event_id"),
        Bad("missing data.platform", js(envelope(user, data={"content": "x"})), "data.platform"),
        Bad(
            "likes not a number",
            js(envelope(user, data={"platform": "x", "likes": "many"})),
            "data.likes",
        ),
        Bad(
            "negative comments",
            js(envelope(user, data={"platform": "x", "comments": -1})),
            "data.comments",
        ),
        Bad("data is null", js(envelope(user, data=None)), "data"),
        Bad("user_id is a list", js(envelope(user, user_id=[1])), "user_id"),
        Bad("user_id too long", js(envelope("u" * 500)), "user_id"),
        Bad("event_id not a UUID", js(envelope(user, event_id="123")), "event_id"),
        Bad(
            "occurred_at without zone",
            js(envelope(user, occurred_at="2026-02-26T10:30:00")),
            "occurred_at",
        ),
        Bad("unknown field in envelope", js({**good, "priority": "high"}), "priority"),
        Bad("unknown type", js(envelope(user, type="post_deleted")), "type"),
        Bad(
            "internal type on a notification route",
            js(envelope(user, type="telegram.blocked", data={"reason": "x", "error_code": 403})),
            "not a notification type",
        ),
        Bad(
            "automation without platforms",
            js(
                envelope(
                    user,
                    type="automation_executed",
                    data={"automation_name": "a", "platforms": [], "execution_time": "now"},
                )
            ),
            "data.platforms",
            "automation_executed",
        ),
        Bad(
            "daily_summary with a bad date",
            js(envelope(user, type="daily_summary", data={"date": "yesterday"})),
            "data.date",
            "daily_summary",
        ),
        Bad(
            "300 KiB event",
            js(envelope(user, data={"platform": "x", "content": "y" * (300 * 1024)})),
            f"larger than {MAX_EVENT_BYTES}",
        ),
        Bad("10 MB body", b'{"pad": "' + b"x" * TEN_MB + b'"}', f"larger than {MAX_EVENT_BYTES}"),
    ]
    hostile = [
        Hostile(
            "HTML in content",
            {
                "platform": "instagram",
                "content": "<script>alert('x')</script> & <b>bold</b> </code>",
            },
            "<script>alert('x')</script> & <b>bold</b> </code>",
            "&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; &lt;/code&gt;",
        ),
        Hostile(
            "control characters in content",
            {"platform": "instagram", "content": "a\x00b\x07c\x1b[31md\x7fe\u202ef"},
            "abc[31mde\u202ef",
            "abc[31mde\u202ef",
        ),
        Hostile(
            "lone surrogate in content",
            {"platform": "instagram", "content": "ok \ud800 ok"},
            "ok ? ok",
            "ok ? ok",
        ),
        Hostile(
            "HTML in the error of a failure",
            {"platform": "<i>x</i>", "error": "<a href='javascript:alert(1)'>click</a> &amp;"},
            "<a href='javascript:alert(1)'>click</a> &amp;",
            "&lt;a href='javascript:alert(1)'&gt;click&lt;/a&gt; &amp;amp;",
            "post_failure",
        ),
        Hostile(
            "100,000-character content",
            {"platform": "instagram", "content": "long " * 20_000},
            "long long",
            "long long",
        ),
    ]
    return bad, hostile


async def test_malformed_events_are_dead_lettered_and_valid_ones_delivered(
    fresh_database_url, rabbitmq_url, tmp_path
):
    tag = f"bad-{uuid.uuid4().hex[:6]}"
    users = make_users(20, tag)
    await seed_links(fresh_database_url, users)
    hostile_user, hostile_chat = users[0]
    bad, hostile = corpus(hostile_user)
    valid = marked_events(tag, users[1:], 4 * (len(bad) + len(hostile)))
    refused_by_broker: list[str] = []
    order = iter(valid.events)

    async with standin_process(tmp_path) as telegram:
        async with notifier_up(
            fresh_database_url, rabbitmq_url, telegram.base_url, tmp_path
        ) as service:

            async def publish_valid(n: int) -> None:
                for _ in range(n):
                    event = next(order)
                    await publish_raw(
                        rabbitmq_url, event.type.value, event.to_json(),
                        message_id=str(event.event_id), content_type="application/json",
                    )  # fmt: skip

            for item in bad:
                await publish_valid(2)
                try:
                    await publish_raw(
                        rabbitmq_url, item.routing_key, item.body, message_id=f"bad:{item.name}"
                    )
                except (aio_pika.exceptions.AMQPError, ConnectionError) as exc:
                    # A broker whose max message size is smaller refuses the publish outright:
                    # the publisher knows, nothing is silently lost.
                    assert len(item.body) > MAX_EVENT_BYTES, (item.name, exc)
                    refused_by_broker.append(item.name)
                await publish_valid(2)
            for item in hostile:
                await publish_valid(2)
                body = envelope(hostile_user, type=item.type, data=item.data)
                await publish_raw(
                    rabbitmq_url, item.type, json.dumps(body).encode(),
                    message_id=f"hostile:{item.name}", content_type="text/plain",
                )  # fmt: skip
                await publish_valid(2)

            expected_dead = len(bad) - len(refused_by_broker)
            await eventually(
                lambda: _delivered(telegram, valid, hostile_chat, len(hostile)),
                90,
                0.25,
                "every valid and hostile event delivered",
            )
            # On a timeout, the comparison below names each message that did not arrive.
            with contextlib.suppress(AssertionError):
                await eventually(
                    lambda: _queue_empty_and_dlq(rabbitmq_url, expected_dead),
                    30,
                    0.25,
                    f"{expected_dead} messages in the DLQ and the queue empty",
                )
            assert await service.answers(), "the notifier is not ready any more"
        counted = await tally(telegram, valid)
        hostile_texts = [
            (m["text"], m["raw_text"]) for m in await telegram.messages(hostile_chat, "bot")
        ]
    dead = {m.message_id: m for m in await drain_dlq(rabbitmq_url)}

    problems = []
    for item in bad:
        if item.name in refused_by_broker:
            continue
        message = dead.pop(f"bad:{item.name}", None)
        if message is None:
            problems.append(f"{item.name}: not in the DLQ")
            continue
        headers = message.headers or {}
        reason, error = headers.get(DLQ_REASON_HEADER), str(headers.get(DLQ_ERROR_HEADER, ""))
        if reason != "invalid" or item.error not in error:
            problems.append(f"{item.name}: reason={reason!r} error={error[:200]!r}")
        if message.body != item.body:
            problems.append(f"{item.name}: the DLQ copy differs from what was published")
    problems += [f"unexpected DLQ message {key}" for key in dead]
    for item in hostile:
        if not any(item.shown in shown and item.sent_html in html for shown, html in hostile_texts):
            problems.append(f"{item.name}: not delivered as expected; got {hostile_texts!r:.600}")

    report(
        "bad input",
        events=len(valid.events) + len(hostile),
        faults=len(bad),
        lost=len(counted.lost),
        duplicated=counted.extra,
        dead_lettered=expected_dead - sum(p.endswith("not in the DLQ") for p in problems),
        refused_by_broker=len(refused_by_broker),
        hostile_delivered=len(hostile_texts),
    )
    assert problems == [], "\n".join(problems)
    assert counted.lost == [] and counted.extra == 0, (counted.lost, counted.duplicated)
    assert len(hostile_texts) == len(hostile)


async def _delivered(telegram: Any, valid: Any, hostile_chat: int, hostile: int) -> bool:
    counted = await tally(telegram, valid)
    if len(counted.counts) < len(valid.events):
        return False
    return len(await telegram.messages(hostile_chat, "bot")) >= hostile


async def _queue_empty_and_dlq(rabbitmq_url: str, expected: int) -> bool:
    return await queue_depth(rabbitmq_url) == 0 and (
        await queue_depth(rabbitmq_url, "notifier.events.dlq") >= expected
    )
