"""The event contract: valid events parse, malformed ones fail naming the problem."""

import json
import uuid
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

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
    sample_data,
)
from tests.support.examples import AT, AUTOMATION_EXECUTED, POST_FAILURE, POST_SUCCESS

pytestmark = pytest.mark.unit

EVENT_ID = "7b0c2f0e-2c7e-4a53-9a55-3f1d6c0f9a10"


def envelope(**overrides):
    body = {
        "event_id": EVENT_ID,
        "type": "post_success",
        "user_id": "123",
        "occurred_at": "2026-02-26T10:30:00Z",
        "data": POST_SUCCESS,
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
        ("post_failure", POST_FAILURE, PostFailureData),
        ("automation_executed", AUTOMATION_EXECUTED, AutomationExecutedData),
        ("daily_summary", {"date": "2026-02-26"}, DailySummaryData),
        ("daily_summary", sample_data(EventType.DAILY_SUMMARY, AT.date()), DailySummaryData),
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


def summary(**data):
    return envelope(type="daily_summary", data={"date": "2026-02-26", **data})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # ZoneInfo("Asia") raises IsADirectoryError (an OSError): the event that stalled delivery.
        (summary(timezone="Asia"), "data.timezone: Value error, must be an IANA time zone"),
        (summary(timezone="localtime"), "data.timezone"),
        (summary(timezone="../../etc/passwd"), "data.timezone"),
        (summary(timezone="Mars/Olympus_Mons"), "data.timezone"),
        (summary(timezone="x" * 10_000), "data.timezone"),
        (summary(date="0001-01-01"), "data.date: Value error, must be between"),
        (summary(date="9999-12-31"), "data.date"),
        (summary(total_posts=2**31), "data.total_posts"),
        (
            summary(platforms={f"p{i}": {"posts": 1, "engagement": 1} for i in range(101)}),
            "data.platforms",
        ),
        (
            summary(platforms={"x": {"posts": 1, "engagement": 10**30}}),
            "data.platforms.x.engagement",
        ),
        (
            envelope(occurred_at="0001-01-01T00:00:00+05:00"),
            "occurred_at: Value error, must be between",
        ),
        (envelope(occurred_at="9999-12-31T23:59:59-05:00"), "occurred_at"),
        (envelope(data={"platform": "instagram", "likes": 2**31}), "data.likes"),
        (envelope(data={"platform": "instagram", "comments": 10**40}), "data.comments"),
        (envelope(data={"platform": "i" * 65}), "data.platform"),
        (
            envelope(data={"platform": "insta\x00gram"}),
            "data.platform: Value error, must not contain control",
        ),
        (envelope(data={"platform": "x", "post_id": "p" * 201}), "data.post_id"),
        (envelope(data={"platform": "x", "post_id": "p\nq"}), "data.post_id"),
        (envelope(user_id="u\x00"), "user_id: Value error, must not contain control"),
        (envelope(user_id="u\u2028v"), "user_id"),
        (envelope(user_id="u" * 5000), "user_id"),
        (
            envelope(
                type="automation_executed",
                data={"automation_name": "r", "platforms": ["x"] * 101, "execution_time": "t"},
            ),
            "data.platforms",
        ),
        (
            envelope(
                type="post_metrics_updated", data={"post_id": "p", "likes": -1, "comments": 0}
            ),
            "data.likes",
        ),
    ],
)
def test_values_the_database_or_the_clock_cannot_take_are_refused_at_the_contract(body, expected):
    with pytest.raises(InvalidEvent) as excinfo:
        parse_event(body)
    assert expected in str(excinfo.value)


@pytest.mark.parametrize(
    "zone", ["Asia/Seoul", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+9"]
)
def test_real_time_zones_and_edge_years_are_accepted(zone):
    _, data = parse_event(summary(timezone=zone, date="2999-12-31"))
    assert data.timezone == zone
    event, _ = parse_event(envelope(occurred_at="2000-01-01T00:00:00+09:00"))
    assert event.occurred_at.year == 1999  # in UTC: still a valid, convertible instant


def test_free_text_keeps_what_identifiers_may_not_hold():
    # Content, errors and names are shown (escaped) and stored (cleaned): controls are allowed.
    _, data = parse_event(envelope(data={"platform": "x", "content": "a\x00b\x1b[31m\u202e"}))
    assert data.content == "a\x00b\x1b[31m\u202e"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
field_values = (
    json_values
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from(
        [
            "",
            " ",
            "Asia",
            "UTC",
            "0001-01-01",
            "9999-12-31",
            "2026-02-26",
            "2026-02-26T10:30:00Z",
            "0001-01-01T00:00:00+14:00",
            "\u202e",
            "\x00",
            "\ud800",
            "x" * 5000,
            "https://example.com/p/1",
            "javascript:alert(1)",
        ]
    )
    | st.integers(min_value=4000, max_value=5000).map(lambda n: ["instagram"] * n)
)
DATA_FIELDS = ["platform", "content", "post_url", "likes", "comments", "post_id", "error",
               "automation_name", "platforms", "execution_time", "date", "timezone", "resend",
               "total_posts", "successful_posts", "failed_posts", "total_engagement"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@example(  # the event that stalled every delivery: ZoneInfo("Asia") raises IsADirectoryError
    type_="daily_summary",
    user_id="u1",
    occurred_at="2026-02-26T10:30:00Z",
    data={"date": "2026-02-26", "timezone": "Asia"},
)
@example(type_="post_success", user_id="u1", occurred_at="0001-01-01T00:00:00+05:00", data={})
@given(
    type_=st.sampled_from([t.value for t in EventType] + ["post_deleted", ""]),
    user_id=st.one_of(st.text(max_size=200), st.integers(), st.just("u" * 5000)),
    occurred_at=st.one_of(
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()), st.text(max_size=40)
    ),
    data=st.dictionaries(st.sampled_from(DATA_FIELDS), field_values, max_size=8),
)
def test_any_event_either_parses_or_is_refused_with_a_reason(type_, user_id, occurred_at, data):
    body = json.dumps(
        {"event_id": EVENT_ID, "type": type_, "user_id": user_id, "occurred_at": occurred_at,
         "data": data}
    )  # fmt: skip
    try:
        event, typed = parse_event(body)
    except InvalidEvent as exc:
        assert str(exc)  # names the problem
        return
    # What parses can be stored and scheduled: the values the notifier relies on are sane.
    assert len(event.user_id) <= 128 and event.user_id.strip()
    assert 2000 <= event.occurred_at.year <= 2999
    if isinstance(typed, DailySummaryData):
        ZoneInfo(typed.timezone)  # never raises for a parsed event
        assert date(2000, 1, 1) <= typed.date <= date(2999, 12, 31)
