"""`sns-telegram publish`: samples per type, validation naming the field, confirmed publishing."""

import asyncio
import json
import uuid
from datetime import UTC, date, datetime

import pytest

from services.cli import main
from services.ops.publish import InvalidInput, build_event, parse_data
from shared.contract import INTERNAL_TYPES, EventType, new_event, parse_event, sample_data
from tests.ops.helpers import declare_topology, drain, observe
from tests.support.examples import AT as NOW


@pytest.mark.unit
@pytest.mark.parametrize("event_type", [t for t in EventType if t not in INTERNAL_TYPES])
def test_every_type_has_a_valid_sample(event_type):
    event = build_event(event_type.value, "123", None, now=NOW)
    parsed, _ = parse_event(event.to_json())
    assert parsed == event
    assert event.data == sample_data(event_type, NOW.date())


@pytest.mark.unit
@pytest.mark.parametrize("event_type", INTERNAL_TYPES)
def test_internal_events_are_not_for_an_operator_to_publish(event_type):
    # They pause or move a user's link: only the notifier sends them, signed.
    with pytest.raises(InvalidInput, match="internal event: only the notifier publishes it"):
        build_event(event_type.value, "123", None, now=NOW)
    parse_event(new_event(event_type, "123", sample_data(event_type, NOW.date())).to_json())


@pytest.mark.unit
def test_the_post_success_sample_is_the_specification_example():
    data = build_event("post_success", "123", None, now=NOW).data
    assert data["platform"] == "instagram"
    assert (data["likes"], data["comments"]) == (1234, 56)
    assert data["post_url"].startswith("https://instagram.com/p/")


@pytest.mark.unit
def test_the_daily_summary_sample_is_for_today():
    assert build_event("daily_summary", "123", None, now=NOW).data["date"] == "2026-02-26"
    assert sample_data(EventType.DAILY_SUMMARY, date(2026, 3, 1))["date"] == "2026-03-01"


@pytest.mark.unit
def test_given_ids_and_times_are_kept():
    event_id = uuid.uuid4()
    event = build_event(
        "post_failure",
        "u-1",
        {"platform": "x", "error": "boom"},
        event_id=str(event_id),
        occurred_at="2026-02-26T19:30:00+09:00",
    )
    assert event.event_id == event_id
    assert event.occurred_at == datetime(2026, 2, 26, 10, 30, tzinfo=UTC)
    assert event.data == {"platform": "x", "error": "boom"}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": {"platform": "", "error": "e"}}, "data.platform: Value error, must not be blank"),
        ({"data": {"platform": "x"}}, "data.error: Field required"),
        ({"user_id": " "}, "user_id: Value error, must not be blank"),
        ({"event_id": "nope"}, "event_id: 'nope' is not a UUID"),
        ({"occurred_at": "yesterday"}, "occurred_at: 'yesterday' is not an ISO 8601 date-time"),
        ({"occurred_at": "2026-02-26T10:30:00"}, "occurred_at: Value error, must include a time"),
        ({"event_type": "post_deleted"}, "type: 'post_deleted' is not one of post_success"),
    ],
)
def test_invalid_input_names_the_field(kwargs, message):
    arguments = {"event_type": "post_failure", "user_id": "u-1", "data": None, **kwargs}
    with pytest.raises(InvalidInput) as raised:
        build_event(
            arguments.pop("event_type"),
            arguments.pop("user_id"),
            arguments.pop("data"),
            **arguments,
        )
    assert message in str(raised.value)


@pytest.mark.unit
def test_data_comes_from_the_option_or_the_file(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('{"platform": "twitter", "error": "x"}')
    assert parse_data(None, None) is None
    assert parse_data('{"a": 1}', None) == {"a": 1}
    assert parse_data(None, str(path)) == {"platform": "twitter", "error": "x"}
    with pytest.raises(InvalidInput, match="--data: not valid JSON"):
        parse_data("{", None)
    with pytest.raises(InvalidInput, match="--data: must be a JSON object, got list"):
        parse_data("[1]", None)
    with pytest.raises(InvalidInput, match="--data-file: cannot read"):
        parse_data(None, str(tmp_path / "missing.json"))


async def publish_cli(monkeypatch, url, *argv):
    monkeypatch.setenv("RABBITMQ_URL", url)
    return await asyncio.to_thread(main, ["publish", *argv])


@pytest.mark.integration
async def test_publish_with_the_sample_data_just_works(rabbitmq_url, monkeypatch, capsys):
    await declare_topology(rabbitmq_url)
    observer = await observe(rabbitmq_url, "#")

    assert await publish_cli(monkeypatch, rabbitmq_url, "post_success", "--user", "123") == 0

    out, err = capsys.readouterr()
    event_id = out.strip()
    assert "published post_success for user 123" in err
    [message] = await drain(rabbitmq_url, observer)
    event, data = parse_event(message.body)
    assert str(event.event_id) == event_id == message.message_id
    assert event.user_id == "123"
    assert (data.platform, data.likes, data.comments) == ("instagram", 1234, 56)
    assert message.routing_key == "post_success"


@pytest.mark.integration
async def test_publish_with_given_data_id_and_time(rabbitmq_url, monkeypatch, capsys, tmp_path):
    await declare_topology(rabbitmq_url)
    observer = await observe(rabbitmq_url, "#")
    event_id = str(uuid.uuid4())
    data_file = tmp_path / "failure.json"
    data_file.write_text(json.dumps({"platform": "twitter", "error": "Rate limited"}))

    code = await publish_cli(
        monkeypatch,
        rabbitmq_url,
        "post_failure",
        "--user",
        "u-7",
        "--data-file",
        str(data_file),
        "--event-id",
        event_id,
        "--occurred-at",
        "2026-02-26T10:30:00Z",
    )

    assert code == 0
    assert capsys.readouterr().out.strip() == event_id
    [message] = await drain(rabbitmq_url, observer)
    event, data = parse_event(message.body)
    assert event.occurred_at == NOW
    assert data.error == "Rate limited"


@pytest.mark.integration
async def test_an_invalid_event_is_not_published_and_exits_2(rabbitmq_url, monkeypatch, capsys):
    await declare_topology(rabbitmq_url)
    observer = await observe(rabbitmq_url, "#")

    code = await publish_cli(
        monkeypatch, rabbitmq_url, "post_success", "--user", "1", "--data", '{"likes": -1}'
    )

    assert code == 2
    err = capsys.readouterr().err
    assert "invalid event: data.platform: Field required" in err
    assert "data.likes: Input should be greater than or equal to 0" in err
    assert await drain(rabbitmq_url, observer) == []


@pytest.mark.integration
async def test_an_unroutable_event_is_a_clear_error(rabbitmq_url, monkeypatch, capsys):
    # A fresh vhost: no queue is bound to sns.events.
    code = await publish_cli(monkeypatch, rabbitmq_url, "daily_summary", "--user", "1")

    assert code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "error: event" in err and "was not routed to any queue" in err
    assert "no queue is bound to 'daily_summary'" in err


@pytest.mark.integration
async def test_an_unreachable_broker_is_a_clear_error(monkeypatch, capsys):
    code = await publish_cli(
        monkeypatch, "amqp://guest:pw@127.0.0.1:1/", "post_success", "--user", "1"
    )

    assert code == 1
    err = capsys.readouterr().err
    assert "error: cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/" in err
