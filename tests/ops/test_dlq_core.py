"""The pure core of `sns-telegram dlq`: routing keys, cleaned headers, the view of a dead letter."""

import json
from datetime import UTC, datetime

import aio_pika
import pytest

from services.linker.events import LINKER_DLQ
from services.ops.dlq import Listing
from services.ops.dlq_cli import print_letter, print_listing
from services.ops.letters import (
    DEAD_LETTER_QUEUES,
    DeadLetter,
    Selection,
    original_routing_key,
    replay_headers,
)
from shared.contract import NOTIFIER_DLQ, new_event
from tests.ops.helpers import recording_console

pytestmark = pytest.mark.unit

EVENT = new_event("post_success", "123", {"platform": "instagram", "likes": 1})
DEATH_TIME = datetime(2026, 2, 26, 10, 30, tzinfo=UTC)
X_DEATH = [
    {
        "count": 1,
        "reason": "rejected",
        "queue": "linker.events",
        "time": DEATH_TIME,
        "exchange": "sns.events",
        "routing-keys": ["telegram.blocked"],
    }
]


def notifier_letter(**headers):
    return DeadLetter(
        position=1,
        body=EVENT.to_json(),
        headers={
            "x-dlq-reason": "undeliverable",
            "x-dlq-error": "Forbidden: bot was blocked by the user",
            "x-original-routing-key": "post_success",
            "x-dead-lettered-at": "2026-02-26T10:30:00+00:00",
            "x-delivery-count": 2,
            **headers,
        },
        properties={"message_id": str(EVENT.event_id), "content_type": "application/json"},
        dlq_routing_key="post_success",
    )


def rabbit_letter(body=b'{"not": "an event"}'):
    return DeadLetter(
        position=3,
        body=body,
        headers={
            "x-death": X_DEATH,
            "x-first-death-reason": "rejected",
            "x-first-death-queue": "linker.events",
            "x-first-death-exchange": "sns.events",
            "x-delivery-count": 0,
            "trace": "abc",
        },
        dlq_routing_key=LINKER_DLQ,
    )


def test_the_linker_dlq_name_matches_the_linker():
    assert DEAD_LETTER_QUEUES == (NOTIFIER_DLQ, LINKER_DLQ)


@pytest.mark.parametrize(
    ("headers", "dlq_key", "body_type", "expected"),
    [
        ({"x-original-routing-key": "post_failure"}, "post_success", None, "post_failure"),
        ({"x-death": X_DEATH}, LINKER_DLQ, None, "telegram.blocked"),
        ({}, "daily_summary", None, "daily_summary"),
        ({}, LINKER_DLQ, "telegram.blocked", "telegram.blocked"),
        ({}, LINKER_DLQ, None, None),
        ({"x-original-routing-key": ""}, NOTIFIER_DLQ, None, None),
        ({"x-death": "garbage"}, None, "post_success", "post_success"),
    ],
)
def test_original_routing_key(headers, dlq_key, body_type, expected):
    assert original_routing_key(headers, dlq_key, body_type) == expected


def test_replay_drops_every_dead_letter_header_and_keeps_the_rest():
    headers = {
        **notifier_letter().headers,
        **rabbit_letter().headers,
        "x-last-death-reason": "rejected",
        "traceparent": "00-abc-def-01",
    }
    assert replay_headers(headers) == {"trace": "abc", "traceparent": "00-abc-def-01"}


def test_a_notifier_dead_letter_is_described_from_its_headers():
    letter = notifier_letter()
    assert letter.event_id == str(EVENT.event_id)
    assert letter.event_type == "post_success"
    assert letter.reason == "undeliverable"
    assert letter.error == "Forbidden: bot was blocked by the user"
    assert letter.dead_lettered_at == DEATH_TIME
    assert letter.deliveries == 2
    assert letter.routing_key == "post_success"
    assert letter.valid and letter.problem is None


def test_a_rabbitmq_dead_letter_is_described_from_x_death():
    letter = rabbit_letter()
    assert letter.event_id is None
    assert letter.reason == "rejected"
    assert "linker.events" in letter.error and "rejected" in letter.error
    assert letter.dead_lettered_at == DEATH_TIME
    assert letter.routing_key == "telegram.blocked"
    assert letter.event_type == "telegram.blocked"
    assert not letter.valid and "event_id" in (letter.problem or "")


def test_an_invalid_json_body_is_described_and_still_replayable():
    letter = rabbit_letter(body=b"{not json")
    assert "not valid JSON" in (letter.problem or "")
    assert letter.routing_key == "telegram.blocked"
    message = letter.replay_message()
    assert message.body == b"{not json"


def test_the_event_id_comes_from_the_body_without_a_message_id():
    body = json.dumps({"event_id": "e-1", "type": "post_failure"}).encode()
    letter = DeadLetter(position=1, body=body, dlq_routing_key=NOTIFIER_DLQ)
    assert letter.event_id == "e-1"
    assert letter.event_type == "post_failure"
    assert letter.routing_key == "post_failure"
    assert letter.reason == "unknown"


def test_the_replayed_message_is_persistent_with_its_id_and_clean_headers():
    letter = notifier_letter(**{"x-request-id": "r-1"})
    message = letter.replay_message()
    assert message.body == EVENT.to_json()
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.message_id == str(EVENT.event_id)
    assert message.content_type == "application/json"
    assert message.headers == {"x-request-id": "r-1"}


@pytest.mark.parametrize(
    ("selection", "notifier", "rabbit"),
    [
        (Selection(), True, True),
        (Selection(reason="undeliverable"), True, False),
        (Selection(reason="rejected"), False, True),
        (Selection(only_valid=True), True, False),
        (Selection(ids=frozenset({str(EVENT.event_id)})), True, False),
        (Selection(ids=frozenset({"nope"})), False, False),
    ],
)
def test_selection(selection, notifier, rabbit):
    assert selection.matches(notifier_letter()) is notifier
    assert selection.matches(rabbit_letter()) is rabbit


def test_selection_in_words():
    assert Selection().describe() == "all messages"
    assert (
        Selection(ids=frozenset({"b", "a"}), reason="invalid", only_valid=True).describe()
        == "id in a, b and reason=invalid and valid events only"
    )


def test_listing_and_showing_print_user_text_literally():
    letter = notifier_letter(**{"x-dlq-error": "data.platforms: [bold]list[/bold] too short"})
    console, printed = recording_console()
    print_listing(Listing(NOTIFIER_DLQ, 1, [letter]), console)
    print_letter(letter, NOTIFIER_DLQ, console)
    assert printed().count("[bold]list[/bold]") == 3  # table, summary, headers
    console, printed = recording_console()
    print_listing(Listing(NOTIFIER_DLQ, 0, []), console)
    assert printed() == f"{NOTIFIER_DLQ} is empty.\n"
