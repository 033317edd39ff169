"""The delivery log end to end: real events through the real notifier against the stand-in, then
the user's `GET /api/telegram/notifications`, the admin endpoints and `sns-telegram trace` must
tell each notification's story exactly as it happened (sent, skipped and why, held until, edited,
undeliverable, dead-lettered and why, a refused attempt with Telegram's answer, a Retry press)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime, time
from typing import Any

import pytest

from services.common.callbacks import short_uuid
from services.common.delivery_log import trace
from services.linker import menu
from services.ops.trace import look_in_dlq, trace_lines
from shared.contract import Event
from tests.linker.conftest import Linker
from tests.linker.helpers import bearer
from tests.notifier.harness import Harness, running_notifier
from tests.support.bus import publish_raw
from tests.support.ids import new_chat_id, new_user
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

NIGHT = datetime(2026, 2, 26, 23, 0, tzinfo=UTC)
QUIET = {"quiet_start": time(22), "quiet_end": time(7), "timezone": "UTC"}
SUCCESS = {"platform": "instagram", "likes": 10, "comments": 2, "post_id": "p-1"}
FAILURE = {"platform": "instagram", "error": "Connection timeout", "post_id": "p-2"}
AUTOMATION = {"automation_name": "Morning", "platforms": ["x"], "execution_time": "09:00"}
NOTIFICATIONS = "/api/telegram/notifications"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def log_of(linker: Linker, user: str, **params: Any) -> list[dict[str, Any]]:
    response = await linker.client.get(NOTIFICATIONS, headers=bearer(user), params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["notifications"])


def one(items: list[dict[str, Any]], event: Event) -> dict[str, Any]:
    (item,) = [i for i in items if i["event_id"] == str(event.event_id)]
    return item


async def traced(h: Harness, event_id: uuid.UUID) -> str:
    found = await trace(h.engine, event_id)
    return "\n".join(trace_lines(found, await look_in_dlq(h.rabbitmq_url, str(event_id))))


async def test_each_status_comes_back_as_it_happened(
    database_url, rabbitmq_url, start_linker
) -> None:
    linker = await start_linker()
    clock = Clock(NIGHT)
    async with running_notifier(
        database_url, rabbitmq_url, clock=clock, notifier_max_attempts=2
    ) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat, muted_types=["automation_executed"])
        sent = await h.publish("post_success", user, SUCCESS)
        sent_row = await h.wait_delivery(sent, "sent")
        edit = await h.publish(
            "post_metrics_updated", user, {"post_id": "p-1", "likes": 99, "comments": 3}
        )
        await h.wait_delivery(edit, "edited")
        muted = await h.publish("automation_executed", user, AUTOMATION)
        await h.wait_delivery(muted, "skipped")
        h.standin.add_fault(error_code=502, description="Bad Gateway", chat_id=chat)
        retried = await h.publish("post_failure", user, FAILURE)
        await h.wait_delivery(retried, "sent")
        h.standin.add_fault(
            error_code=400, description="Bad Request: message is too long", chat_id=chat
        )
        rejected = await h.publish("post_failure", user, FAILURE | {"post_id": "p-3"})
        await h.wait_delivery(rejected, "failed")
        invalid_id = uuid.uuid4()
        body = {"event_id": str(invalid_id), "type": "post_success", "user_id": user,
                "occurred_at": "2026-02-26T10:30:00Z", "data": {"likes": "many"}}  # fmt: skip
        await publish_raw(
            rabbitmq_url, "post_success", json.dumps(body).encode(), message_id=str(invalid_id)
        )

        async def invalid_recorded() -> bool:
            return any(i["event_id"] == str(invalid_id) for i in await log_of(linker, user))

        await eventually(invalid_recorded, 15, what="the invalid event in the delivery log")

        quiet_user, quiet_chat = new_user(), new_chat_id()
        await h.link(quiet_user, quiet_chat, **QUIET)
        held = await h.publish("post_failure", quiet_user, FAILURE)
        await h.wait_delivery(held, "held")
        gone_user, gone_chat = new_user(), new_chat_id()
        await h.link(gone_user, gone_chat)
        h.standin.set_chat_state(gone_chat, "blocked")
        gone = await h.publish("post_failure", gone_user, FAILURE)
        await h.wait_delivery(gone, "undeliverable")
        unlinked = new_user()
        nowhere = await h.publish("post_failure", unlinked, FAILURE)
        await h.wait_delivery(nowhere, "skipped")

        items = await log_of(linker, user)
        # Newest first, exactly the events published, each as it happened.
        assert [i["event_id"] for i in items] == [
            str(e) for e in (invalid_id, rejected.event_id, retried.event_id, muted.event_id,
                             edit.event_id, sent.event_id)
        ]  # fmt: skip
        message = h.standin.messages(chat, "bot")
        first = one(items, sent)
        assert first["status"] == "sent"
        assert first["telegram_message_id"] == sent_row["telegram_message_id"]
        assert first["telegram_message_id"] == message[0]["message_id"]
        assert first["type"] == "post_success" and first["attempts"] == 1
        assert datetime.fromisoformat(first["occurred_at"]) == sent.occurred_at
        assert first["preview"].startswith("✅ SNS 게시 완료") and "<" not in first["preview"]
        edited = one(items, edit)
        assert (edited["status"], edited["type"]) == ("edited", "post_metrics_updated")
        assert edited["telegram_message_id"] == message[0]["message_id"]
        assert "99" in edited["preview"]  # the new counts
        assert one(items, muted)["status"] == "skipped"
        assert one(items, muted)["reason"] == "type muted"
        assert one(items, muted)["telegram_message_id"] is None
        assert one(items, retried)["status"] == "sent" and one(items, retried)["attempts"] == 2
        dead = one(items, rejected)
        assert dead["status"] == "dead_lettered" and dead["dead_letter"] == "undeliverable"
        assert "message is too long" in dead["reason"]
        bad = next(i for i in items if i["event_id"] == str(invalid_id))
        assert bad["status"] == "dead_lettered" and bad["dead_letter"] == "invalid"
        assert "data.platform" in bad["reason"] or "data.likes" in bad["reason"]
        (waiting,) = await log_of(linker, quiet_user)
        assert waiting["status"] == "held"
        assert datetime.fromisoformat(waiting["held_until"]) == datetime(2026, 2, 27, 7, tzinfo=UTC)
        (refused,) = await log_of(linker, gone_user)
        assert refused["status"] == "undeliverable" and "blocked" in refused["reason"]
        (skipped,) = await log_of(linker, unlinked)
        assert skipped["status"] == "skipped" and skipped["reason"] == "not linked"

        # Filters: by status, by type, both.
        only_dead = await log_of(linker, user, status="dead_lettered")
        assert {i["event_id"] for i in only_dead} == {str(invalid_id), str(rejected.event_id)}
        assert [i["event_id"] for i in await log_of(linker, user, type="automation_executed")] == [
            str(muted.event_id)
        ]
        both = await log_of(linker, user, type="post_failure", status=["sent", "skipped"])
        assert [i["event_id"] for i in both] == [str(retried.event_id)]

        # Support: the trace of a dead-lettered, a held and a sent event.
        story = await traced(h, rejected.event_id)
        assert "received: delivery intent recorded" in story
        assert "activity: " in story and "Connection timeout" in story
        assert "attempt 1: Telegram answered 400 Bad Request: message is too long" in story
        assert "hand-over mark" in story
        assert "final: dead-lettered (undeliverable)" in story
        assert "DLQ: in notifier.events.dlq at position" in story
        story = await traced(h, held.event_id)
        assert "final: held for quiet hours until 2026-02-27 07:00:00.000Z" in story
        assert "DLQ: not in notifier.events.dlq" in story
        story = await traced(h, sent.event_id)
        assert f"final: sent: Telegram message {first['telegram_message_id']}" in story
        assert "hand-over mark" in story and "processed: the event is finished" in story
        story = await traced(h, retried.event_id)
        assert "attempt 1: Telegram answered 5" in story and "Bad Gateway (transient)" in story
        assert "final: sent" in story

        # The admin endpoints tell the same; a user token without the admin role may not.
        admin = bearer("support-1", roles=["admin"])
        response = await linker.client.get(
            f"/api/admin/telegram/events/{rejected.event_id}/trace", headers=admin
        )
        assert response.status_code == 200, response.text
        body = response.json()["trace"]
        assert body["deliveries"][0]["status"] == "dead_lettered"
        assert body["refused_attempts"][0]["error_code"] == 400
        assert body["handed_over_at"] is not None
        response = await linker.client.get(
            f"/api/admin/telegram/users/{user}/events", headers=admin, params={"last": 2}
        )
        assert [e["event_id"] for e in response.json()["events"]] == [
            str(invalid_id),
            str(rejected.event_id),
        ]
        response = await linker.client.get(
            f"/api/admin/telegram/events/{sent.event_id}/trace", headers=bearer(user)
        )
        assert response.status_code == 403 and response.json()["code"] == "forbidden"
        response = await linker.client.get(
            f"/api/admin/telegram/events/{uuid.uuid4()}/trace", headers=admin
        )
        assert response.status_code == 404 and response.json()["code"] == "event_not_found"


async def test_pages_neither_repeat_nor_skip_while_new_notifications_arrive(
    database_url, rabbitmq_url, start_linker
) -> None:
    linker = await start_linker()
    async with running_notifier(database_url, rabbitmq_url) as h:
        user = new_user()  # not linked: each event is a skipped notification, quickly recorded
        events = [await h.publish("post_failure", user, FAILURE) for _ in range(5)]
        for event in events:
            await h.wait_delivery(event, "skipped")
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            response = await linker.client.get(NOTIFICATIONS, headers=bearer(user), params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            seen += [i["event_id"] for i in page["notifications"]]
            if len(seen) == 2:  # a new one arrives between pages: it is not on the later pages
                await h.wait_delivery(await h.publish("post_failure", user, FAILURE), "skipped")
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [str(e.event_id) for e in reversed(events)]
        # Another user's log is not this one's, whatever the cursor.
        response = await linker.client.get(
            NOTIFICATIONS, headers=bearer(new_user()), params={"limit": 2}
        )
        assert response.json() == {"status": "success", "notifications": [], "next_cursor": None}


async def test_a_retry_press_is_in_the_failure_s_trace(database_url, rabbitmq_url, start_linker):
    linker = await start_linker()
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await linker.link(user, chat)
        failure = await h.publish("post_failure", user, FAILURE)
        await h.wait_delivery(failure, "sent")
        data = linker.sign(chat, menu.RETRY, short_uuid(failure.event_id))
        message_id = await linker.notify(chat, "❌ SNS 게시 실패", {"🔄 재시도": data})
        await linker.press(chat, message_id, data)

        async def pressed() -> list[dict[str, Any]]:
            return (await trace(h.engine, failure.event_id)).presses

        (press,) = await eventually(pressed, 10, what="the press in the trace")
        assert (press["action"], press["outcome"], press["user_id"]) == ("retry", "requested", user)
        assert "button pressed: retry -> requested" in await traced(h, failure.event_id)


async def test_the_trace_command_prints_an_event_and_a_user_s_last_events(
    database_url, rabbitmq_url
) -> None:
    async with running_notifier(database_url, rabbitmq_url) as h:
        user = new_user()
        event = await h.publish("post_failure", user, FAILURE | {"error": "\x1b[2Jboom"})
        await h.wait_delivery(event, "skipped")
        env = os.environ | {"DATABASE_URL": database_url, "RABBITMQ_URL": rabbitmq_url}

        async def run(*args: str) -> tuple[int, str, str]:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", "trace", *args, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await process.communicate()
            assert process.returncode is not None
            return process.returncode, out.decode(), err.decode()

        code, out, _ = await run(str(event.event_id))
        assert code == 0, out
        assert "final: skipped: not linked" in out and "\x1b" not in out
        assert "\\u001b[2Jboom" in out  # the event's text, escaped for the terminal
        code, out, _ = await run("--user", user, "--last", "5")
        assert code == 0 and str(event.event_id) in out and "skipped: not linked" in out
        code, _, err = await run("not-a-uuid")
        assert code == 2 and "not an event id" in err
        code, out, _ = await run(str(uuid.uuid4()), "--no-dlq")
        assert code == 1 and "nothing recorded" in out
