"""Planning, pure: what the notifier remembers of each platform event (nothing PostgreSQL's jsonb
would refuse), and what each event becomes (`route`)."""

import asyncio
import json
from datetime import UTC, datetime, time
from typing import Any

import pytest

from services.notifier.planning import Lookup, activity_row, chat_tag, dedupe_key, render, route
from services.notifier.records import (
    DeliveryStatus,
    EditPlan,
    Link,
    PostMessage,
    SendPlan,
    Settled,
)
from services.notifier.telegram import Options
from services.notifier.work import Item
from shared.contract import Event, new_event

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


# -- route: each event's plan from what its batch's transaction looked up -----------------------

KEY = b"k" * 32
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # 21:00 in Seoul
SUCCESS = {"platform": "instagram", "content": "hello", "post_id": "p1", "likes": 1}


def linked(user: str, **extra: Any) -> Link:
    return Link(user, "77", True, (), "en", **extra)


def items(*events: Event) -> dict[str, Item]:
    loop = asyncio.get_running_loop()
    found = {}
    for event in events:
        data = event.typed_data()
        found[dedupe_key(event, data)] = Item(event, data, loop.create_future(), "")
    return found


def lookup(links: list[Link], **extra: Any) -> Lookup:
    known = {link.user_id: link for link in links}
    chats = {user: int(link.chat_id or 0) for user, link in known.items() if link.enabled}
    found: dict[str, Any] = {"reports": {}, "posts": {}, "superseded": {}, "waiting": set()}
    return Lookup(now=NOW, links=known, chats=chats, **(found | extra))


async def test_a_linked_user_gets_the_message_in_their_language_with_buttons():
    event = new_event("post_success", "u1", SUCCESS)
    plans, holds, held_edits = route(items(event), lookup([linked("u1")]), KEY)
    plan = plans[str(event.event_id)]
    assert isinstance(plan, SendPlan)
    assert (plan.chat_id, plan.language) == (77, "en")
    assert plan.text == render(event, event.typed_data(), None, "en")
    assert plan.buttons
    assert holds == {} and held_edits == {}


@pytest.mark.parametrize(
    ("links", "reason"),
    [
        ([], "not linked"),
        ([Link("u1", "77", False, (), "en")], "notifications disabled"),
        ([Link("u1", None, True, (), "en")], "notifications disabled"),
        ([Link("u1", "77", True, ("post_success",), "en")], "type muted"),
    ],
)
async def test_no_message_and_why(links, reason):
    event = new_event("post_success", "u1", SUCCESS)
    plans, holds, _ = route(items(event), lookup(links), KEY)
    assert plans == {str(event.event_id): Settled(reason)} and holds == {}


async def test_in_quiet_hours_the_message_is_held_until_they_end():
    seoul = linked("u1", timezone="Asia/Seoul", quiet_start=time(20), quiet_end=time(7))
    event = new_event("post_success", "u1", SUCCESS)
    plans, holds, _ = route(items(event), lookup([seoul]), KEY)
    key = str(event.event_id)
    plan, hold = plans[key], holds[key]
    assert isinstance(plan, SendPlan)
    assert hold.release_at == datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # 07:00 in Seoul
    assert hold.payload == {"text": plan.text, "buttons": plan.buttons}


async def test_a_user_with_messages_waiting_has_new_ones_join_them_now():
    event = new_event("post_success", "u1", SUCCESS)
    _, holds, _ = route(items(event), lookup([linked("u1")], waiting={"u1"}), KEY)
    assert holds[str(event.event_id)].release_at == NOW


def post(status: DeliveryStatus, chat: str, **extra: Any) -> PostMessage:
    found: dict[str, Any] = {"delivery_id": 9, "message_id": 501, "payload": None} | extra
    original = new_event("post_success", "u1", SUCCESS)
    details = {"data": SUCCESS, "chat": chat}
    return PostMessage(original.event_id, NOW, details, True, status=status, **found)


async def test_new_counts_edit_the_post_message_in_the_chat_it_went_to():
    update = new_event("post_metrics_updated", "u1", {"post_id": "p1", "likes": 5, "comments": 2})
    key = str(update.event_id)
    sent = post(DeliveryStatus.SENT, chat_tag(KEY, 77))
    plans, _, _ = route(items(update), lookup([linked("u1")], posts={key: sent}), KEY)
    plan = plans[key]
    assert isinstance(plan, EditPlan) and (plan.chat_id, plan.message_id) == (77, 501)
    elsewhere = post(DeliveryStatus.SENT, chat_tag(KEY, 78))
    plans, _, _ = route(items(update), lookup([linked("u1")], posts={key: elsewhere}), KEY)
    assert plans[key] == Settled("the post's message is in another chat")


async def test_new_counts_of_a_held_post_rewrite_its_held_text():
    update = new_event("post_metrics_updated", "u1", {"post_id": "p1", "likes": 5, "comments": 2})
    key = str(update.event_id)
    held = post(DeliveryStatus.HELD, chat_tag(KEY, 77), message_id=None)
    plans, _, held_edits = route(items(update), lookup([linked("u1")], posts={key: held}), KEY)
    assert plans[key] == Settled("held message updated")
    assert held_edits[key].delivery_id == 9 and "5" in held_edits[key].payload["text"]


async def test_an_update_a_newer_one_replaced_is_skipped_with_the_reason():
    update = new_event("post_metrics_updated", "u1", {"post_id": "p1", "likes": 5, "comments": 2})
    key = str(update.event_id)
    replaced = lookup([linked("u1")], superseded={key: "superseded by a newer update"})
    plans, _, _ = route(items(update), replaced, KEY)
    assert plans[key] == Settled("superseded by a newer update")


# -- delivery options: silent types and what quiet hours do --------------------------------------


async def test_a_silent_type_is_sent_without_a_sound_and_the_others_with_one():
    user = linked("u1", silent_types=("post_failure",))
    silent = new_event("post_failure", "u1", {"platform": "x", "error": "e"})
    loud = new_event("post_success", "u1", SUCCESS)
    plans, holds, _ = route(items(silent, loud), lookup([user]), KEY)
    assert plans[str(silent.event_id)].options == Options(silent=True)  # type: ignore[union-attr]
    assert plans[str(loud.event_id)].options == Options()  # type: ignore[union-attr]
    assert holds == {}


async def test_quiet_hours_that_deliver_silently_send_now_without_a_sound():
    quiet = {"timezone": "Asia/Seoul", "quiet_start": time(20), "quiet_end": time(7)}
    event = new_event("post_success", "u1", SUCCESS)
    plans, holds, _ = route(items(event), lookup([linked("u1", quiet_mode="silent", **quiet)]), KEY)
    assert holds == {}
    assert plans[str(event.event_id)].options == Options(silent=True)  # type: ignore[union-attr]
    # Holding (the default) keeps a silent type's wish in the held payload.
    held = linked("u1", silent_types=("post_success",), **quiet)
    _, holds, _ = route(items(event), lookup([held]), KEY)
    assert holds[str(event.event_id)].payload["silent"] is True
