"""What the notifier remembers of each platform event: nothing PostgreSQL's jsonb would refuse."""

import json

import pytest

from services.notifier.planning import activity_row
from shared.contract import new_event

pytestmark = pytest.mark.unit

HOSTILE = "a\x00b\ud800c"  # a NUL and a lone surrogate: jsonb refuses both
# (Identifiers - user ids, platforms, post ids - with them are refused by the contract itself.)


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        ("post_success", {"platform": "instagram", "post_url": HOSTILE, "content": HOSTILE,
                          "extra": {HOSTILE: [HOSTILE]}}),
        ("post_failure", {"platform": "x", "post_id": "p1", "error": HOSTILE}),
        ("automation_executed", {"automation_name": HOSTILE, "platforms": ["x"],
                                 "execution_time": HOSTILE}),
    ],
)  # fmt: skip
def test_every_activity_row_is_storable(type_, data):
    event = new_event(type_, "u1", data)
    row = activity_row(event, event.typed_data(), chat="tag")
    stored = json.dumps(row.details, ensure_ascii=False)
    stored.encode("utf-8")  # no lone surrogate left
    assert "\\u0000" not in stored and "\x00" not in stored
    assert row.post_id is None or "\x00" not in row.post_id
    assert row.details["data"]  # the original data is kept for Retry and edits


def test_a_success_row_names_its_chat_and_keeps_the_counts():
    event = new_event("post_success", "u1", {"platform": "Instagram", "likes": 3, "comments": 4})
    row = activity_row(event, event.typed_data(), chat="tag")
    assert (row.platform, row.likes, row.comments) == ("instagram", 3, 4)
    assert row.details["chat"] == "tag"
