"""The event contract: valid events parse, malformed ones fail naming the problem."""

import json
import uuid
from datetime import date

import pytest

from shared.contract import (
    MAX_EVENT_BYTES,
    AutomationExecutedData,
    DailySummaryData,
    EventType,
    InvalidEvent,
    PostFailureData,
    PostSuccessData,
    daily_summary_event_id,
    new_event,
    parse_event,
)

pytestmark = pytest.mark.unit

EVENT_ID = "7b0c2f0e-2c7e-4a53-9a55-3f1d6c0f9a10"


def envelope(**overrides):
    body = {
        "event_id": EVENT_ID,
        "type": "post_success",
        "user_id": "123",
        "occurred_at": "2026-02-26T10:30:00Z",
        "data": {
            "platform": "instagram",
            "content": "Post content here...",
            "likes": 1234,
            "comments": 56,
            "post_url": "https://instagram.com/p/abc",
        },
    }
    body.update(overrides)
    return json.dumps(body)


def test_design_example_parses_with_typed_data():
    event, data = parse_event(envelope())
    assert event.event_id == uuid.UUID(EVENT_ID)
    assert event.type is EventType.POST_SUCCESS
    assert event.occurred_at.isoformat() == "2026-02-26T10:30:00+00:00"
    assert isinstance(data, PostSuccessData)
    assert (data.likes, data.comments, data.platform) == (1234, 56, "instagram")


@pytest.mark.parametrize(
    ("type_", "data", "model"),
    [
        ("post_failure", {"platform": "instagram", "error": "Connection timeout"}, PostFailureData),
        (
            "automation_executed",
            {
                "automation_name": "Daily Instagram Post",
                "platforms": ["instagram", "twitter"],
                "execution_time": "2026-02-26 10:30:00 UTC",
            },
            AutomationExecutedData,
        ),
        ("daily_summary", {"date": "2026-02-26"}, DailySummaryData),
        (
            "daily_summary",
            {
                "date": "2026-02-26",
                "total_posts": 5,
                "successful_posts": 5,
                "failed_posts": 0,
                "total_engagement": 2345,
                "platforms": {
                    "instagram": {"posts": 3, "engagement": 1234},
                    "twitter": {"posts": 2, "engagement": 1111},
                },
            },
            DailySummaryData,
        ),
    ],
)
def test_each_seed_example_is_valid(type_, data, model):
    _, typed = parse_event(envelope(type=type_, data=data))
    assert isinstance(typed, model)


def test_unknown_data_fields_are_tolerated_and_kept():
    _, data = parse_event(
        envelope(data={"platform": "x", "likes": 1, "post_id": "p1", "campaign": "spring"})
    )
    assert data.post_id == "p1"
    assert data.model_extra == {"campaign": "spring"}


def test_integer_user_id_is_carried_as_text():
    event, _ = parse_event(envelope(user_id=123))
    assert event.user_id == "123"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (envelope(event_id=None), "event_id"),
        (
            json.dumps({k: v for k, v in json.loads(envelope()).items() if k != "event_id"}),
            "event_id: Field required",
        ),
        (envelope(event_id="not-a-uuid"), "event_id"),
        (envelope(type="post_deleted"), "type: Input should be"),
        (envelope(user_id=""), "user_id"),
        (
            envelope(occurred_at="2026-02-26T10:30:00"),
            "occurred_at: Value error, must include a time zone",
        ),
        (envelope(occurred_at="yesterday"), "occurred_at"),
        (envelope(data={"content": "no platform"}), "data.platform: Field required"),
        (envelope(data={"platform": "instagram", "likes": "many"}), "data.likes"),
        (envelope(data={"platform": "instagram", "likes": -1}), "data.likes"),
        (envelope(type="post_failure", data={"platform": "x"}), "data.error: Field required"),
        (
            envelope(
                type="automation_executed",
                data={"automation_name": "r", "platforms": [], "execution_time": "t"},
            ),
            "data.platforms",
        ),
        (envelope(type="daily_summary", data={}), "data.date: Field required"),
        (envelope(extra_field=1), "extra_field: Extra inputs are not permitted"),
        ("x" * (MAX_EVENT_BYTES + 1), "larger than"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_events_name_the_problem(body, expected):
    with pytest.raises(InvalidEvent) as excinfo:
        parse_event(body)
    assert expected in str(excinfo.value)


def test_new_event_validates_data_and_round_trips():
    event = new_event("post_failure", 42, {"platform": "twitter", "error": "boom"})
    parsed, data = parse_event(event.to_json())
    assert parsed == event
    assert data.error == "boom"
    with pytest.raises(InvalidEvent, match=r"data\.error"):
        new_event("post_failure", 42, {"platform": "twitter"})


def test_daily_summary_event_id_is_stable_per_user_and_day():
    a = daily_summary_event_id("u1", date(2026, 2, 26))
    assert a == daily_summary_event_id("u1", date(2026, 2, 26))
    assert a != daily_summary_event_id("u1", date(2026, 2, 27))
    assert a != daily_summary_event_id("u2", date(2026, 2, 26))
