"""Preferences, quiet hours, buttons, live metrics and groups, end to end: real RabbitMQ,
PostgreSQL, aiogram and the stand-in. Quiet hours run on a clock the test moves."""

from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import text

from services.common.callbacks import callback_key, parse_short_uuid, verify
from services.common.telegram import DEV_BOT_TOKEN
from services.standin.limits import Limits
from tests.notifier.harness import running_notifier
from tests.support.examples import POST_FAILURE, POST_SUCCESS
from tests.support.ids import new_chat_id, new_user, new_users
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

KEY = callback_key(DEV_BOT_TOKEN)
NIGHT = datetime(2026, 2, 26, 23, 0, tzinfo=UTC)
MORNING = datetime(2026, 2, 27, 7, 0, tzinfo=UTC)
QUIET = {"quiet_start": time(22), "quiet_end": time(7), "timezone": "UTC"}
SUCCESS = POST_SUCCESS | {"post_id": "post-1"}


class Clock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def notifier(database_url, rabbitmq_url, clock=None, **settings):
    return running_notifier(
        database_url,
        rabbitmq_url,
        clock=clock,
        notifier_release_interval_seconds=0.05,
        **settings,
    )


@asynccontextmanager
async def at_night(database_url, rabbitmq_url, **link):
    """A notifier whose clock says 23:00 UTC (the test moves `clock.now`) and a user linked, with
    `link`'s columns, to a chat in quiet hours (22:00-07:00): (harness, clock, user, chat)."""
    clock = Clock(NIGHT)
    async with notifier(database_url, rabbitmq_url, clock) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat, **QUIET, **link)
        yield h, clock, user, chat


async def rows(h, sql, **params):
    async with h.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).mappings().all()


async def test_a_muted_type_is_not_sent_and_the_others_are(database_url, rabbitmq_url):
    async with notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat, muted_types=["post_success"])
        muted = await h.publish("post_success", user, SUCCESS)
        sent = await h.publish("post_failure", user, POST_FAILURE)
        await h.wait_delivery(sent, "sent")
        await h.wait_delivery(muted, "skipped")
        (message,) = h.standin.messages(chat, "bot")
        assert message["text"].startswith("❌ SNS 게시 실패")


async def test_english_texts_and_signed_buttons(database_url, rabbitmq_url):
    async with notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat, language="en")
        success = await h.publish("post_success", user, SUCCESS)
        failure = await h.publish("post_failure", user, POST_FAILURE)
        await h.wait_texts(chat, 2)
        first, second = h.standin.messages(chat, "bot")
        assert first["text"] == (
            "✅ SNS post published\n\n📸 Instagram\n📝 Post content here...\n"
            "🔗 https://instagram.com/p/abc\n👥 Likes: 1,234 | Comments: 56\n"
            f"⏰ {success.occurred_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        view, (mute,) = first["reply_markup"]["inline_keyboard"]
        assert view == [{"text": "🔗 View post", "url": "https://instagram.com/p/abc"}]
        assert mute["text"] == "🔕 Mute this type"
        assert verify(KEY, chat, mute["callback_data"])[:2] == ("m", "post_success")

        assert second["text"].startswith("❌ SNS post failed\n\n📱 Platform: Instagram\n")
        (buttons,) = second["reply_markup"]["inline_keyboard"]
        assert [b["text"] for b in buttons] == ["🔄 Retry", "🔕 Mute this type"]
        action, argument, _ = verify(KEY, chat, buttons[0]["callback_data"])
        assert action == "r" and parse_short_uuid(argument) == failure.event_id
        assert all(len(b["callback_data"].encode()) <= 64 for b in buttons)
        assert verify(KEY, chat + 1, buttons[0]["callback_data"]) is None

        # The linker's Retry finds the original event's data on the activity row.
        (activity,) = await rows(
            h, "SELECT details FROM activity WHERE event_id = :id", id=failure.event_id
        )
        assert activity["details"]["data"] == POST_FAILURE


async def test_quiet_hours_hold_messages_then_fold_them_into_one(database_url, rabbitmq_url):
    async with at_night(database_url, rabbitmq_url) as (h, clock, user, chat):
        events = [
            await h.publish("post_failure", user, {"platform": "x", "error": "first"}),
            await h.publish("post_success", user, SUCCESS),
            await h.publish(
                "daily_summary",
                user,
                {"date": "2026-02-26", "total_posts": 1, "successful_posts": 1,
                 "failed_posts": 0, "total_engagement": 5},
            ),
        ]  # fmt: skip
        for event in events:
            row = await h.wait_delivery(event, "held")
            assert row["release_at"] == MORNING
            assert row["payload"]["text"]
        # Redelivered while held: still one row, still held, nothing sent.
        await h.publisher.publish(events[0])
        marker_user, marker_chat = new_user(), new_chat_id()
        await h.link(marker_user, marker_chat)
        marker = await h.publish("post_failure", marker_user, POST_FAILURE)
        await h.wait_delivery(marker, "sent")
        held = await rows(h, "SELECT status FROM deliveries WHERE user_id = :u", u=user)
        assert [r["status"] for r in held] == ["held"] * 3
        assert h.texts(chat) == []

        clock.now = MORNING - timedelta(seconds=1)  # not yet: a release pass sends nothing
        assert await h.notifier.processor.release_held() == 0
        assert h.texts(chat) == []
        clock.now = MORNING
        (fold,) = await h.wait_texts(chat, 1)
        assert fold.startswith("🌙 방해 금지 시간 동안 온 알림 3건\n\n────────\n\n❌ SNS 게시 실패")
        assert fold.count("\n\n────────\n\n") == 3
        assert (
            "⚠️ 오류: first" in fold and "✅ SNS 게시 완료" in fold and "📊 일일 SNS 리포트" in fold
        )
        (message,) = h.standin.messages(chat, "bot")
        assert message["reply_markup"] is None
        for event in events:
            row = await h.wait_delivery(event, "sent")
            assert row["telegram_message_id"] == message["message_id"]
            assert row["payload"]["folded"] == 3  # went out together (never edited later)

        # After quiet hours, messages go out at once again, with their buttons.
        later = await h.publish("post_failure", user, POST_FAILURE)
        await h.wait_delivery(later, "sent")
        assert h.standin.messages(chat, "bot")[1]["reply_markup"] is not None
        assert len(h.texts(chat)) == 2


async def test_a_single_held_message_goes_out_as_it_is(database_url, rabbitmq_url):
    async with at_night(database_url, rabbitmq_url, language="en") as (h, clock, user, chat):
        event = await h.publish("post_failure", user, POST_FAILURE)
        await h.wait_delivery(event, "held")
        clock.now = MORNING + timedelta(minutes=5)
        (message,) = await eventually(lambda: h.standin.messages(chat, "bot"))
        assert message["text"].startswith("❌ SNS post failed")
        (buttons,) = message["reply_markup"]["inline_keyboard"]
        assert verify(KEY, chat, buttons[0]["callback_data"])[0] == "r"
        row = await h.wait_delivery(event, "sent")
        assert row["telegram_message_id"] == message["message_id"]


async def test_a_type_muted_while_held_is_dropped_at_release(database_url, rabbitmq_url):
    async with at_night(database_url, rabbitmq_url) as (h, clock, user, chat):
        muted = await h.publish("post_success", user, SUCCESS)
        kept = await h.publish("post_failure", user, POST_FAILURE)
        await h.wait_delivery(kept, "held")
        async with h.engine.begin() as conn:
            await conn.execute(
                text("UPDATE telegram_links SET muted_types = '{post_success}' WHERE user_id = :u"),
                {"u": user},
            )
        clock.now = MORNING
        await h.wait_delivery(kept, "sent")
        row = await h.wait_delivery(muted, "skipped")
        assert row["error"] == "type muted"
        (only,) = h.texts(chat)
        assert only.startswith("❌ SNS 게시 실패")  # alone: not a fold


def buttons_of(message, chat):
    """Each button's label and URL or verified (action, argument), row by row."""
    return [
        [(b["text"], b.get("url") or verify(KEY, chat, b["callback_data"])[:2]) for b in row]
        for row in message["reply_markup"]["inline_keyboard"]
    ]


async def test_new_metrics_edit_the_success_message_in_place(database_url, rabbitmq_url):
    async with notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        success = await h.publish("post_success", user, SUCCESS)
        await h.wait_delivery(success, "sent")
        (before,) = h.standin.messages(chat, "bot")

        update = await h.publish(
            "post_metrics_updated", user, {"post_id": "post-1", "likes": 2000, "comments": 70}
        )
        row = await h.wait_delivery(update, "edited")
        assert row["telegram_message_id"] == before["message_id"]
        (after,) = h.standin.messages(chat, "bot")
        assert after["edited"] and "👥 좋아요: 2,000 | 댓글: 70\n" in after["text"]
        assert after["text"].replace("2,000 | 댓글: 70", "1,234 | 댓글: 56") == before["text"]
        # The same buttons, signed again (so dated anew) with the edit.
        assert buttons_of(after, chat) == buttons_of(before, chat)
        (activity,) = await rows(
            h, "SELECT likes, comments FROM activity WHERE event_id = :id", id=success.event_id
        )
        assert dict(activity) == {"likes": 2000, "comments": 70}

        # The same numbers again: Telegram says "not modified", which is fine.
        same = await h.publish(
            "post_metrics_updated", user, {"post_id": "post-1", "likes": 2000, "comments": 70}
        )
        assert (await h.wait_delivery(same, "edited"))["error"] is None
        # Older numbers (an earlier event delivered late) change nothing.
        stale = await h.publish(
            "post_metrics_updated",
            user,
            {"post_id": "post-1", "likes": 1, "comments": 1},
            occurred_at=success.occurred_at,
        )
        await h.wait_delivery(stale, "skipped")
        # A post nobody told us about: nothing to edit.
        unknown = await h.publish(
            "post_metrics_updated", user, {"post_id": "nope", "likes": 1, "comments": 1}
        )
        await h.wait_delivery(unknown, "skipped")
        assert len(h.standin.messages(chat, "bot")) == 1
        assert "2,000" in h.texts(chat)[0]
        assert h.standin.stats["requests"].get("editMessageText") == 2


async def test_metrics_for_a_held_message_update_what_will_be_sent(database_url, rabbitmq_url):
    async with at_night(database_url, rabbitmq_url, language="en") as (h, clock, user, chat):
        success = await h.publish("post_success", user, SUCCESS)
        await h.wait_delivery(success, "held")
        update = await h.publish(
            "post_metrics_updated", user, {"post_id": "post-1", "likes": 5000, "comments": 9}
        )
        await h.wait_delivery(update, "edited")
        clock.now = MORNING
        (released,) = await h.wait_texts(chat, 1)
        assert "👥 Likes: 5,000 | Comments: 9\n" in released


async def test_25_messages_to_a_group_keep_to_its_20_a_minute(database_url, rabbitmq_url):
    async with notifier(
        database_url,
        rabbitmq_url,
        standin_limits={"global_per_sec": 30, "per_group_per_min": 20},
        telegram_rate_per_chat=100,  # only the group window paces this chat
    ) as h:
        user, group = new_user(), -new_chat_id()
        await h.link(user, group)
        for i in range(25):
            await h.publish("post_failure", user, {"platform": "x", "error": f"#{i}"})
        texts = await h.wait_texts(group, 25, timeout=90)
        assert [t.split("⚠️ 오류: ")[1].split("\n")[0] for t in texts] == [
            f"#{i}" for i in range(25)
        ]
        assert h.standin.stats["too_many_requests"] == 0
        sent = [m["sent_at"] for m in h.standin.messages(group, "bot")]
        # the 21st waited for the first one's minute (as the stand-in counts it: its windows are
        # `slack` shorter, for loopback jitter between its clock and its records)
        assert sent[20] - sent[0] >= 60 - Limits().slack


async def test_two_replicas_release_each_held_message_once(database_url, rabbitmq_url):
    from services.notifier.main import build, start, stop
    from services.notifier.settings import NotifierSettings

    clock = Clock(NIGHT)
    async with notifier(database_url, rabbitmq_url, clock, telegram_rate_per_chat=100) as h:
        second = build(
            NotifierSettings(
                database_url=database_url,
                rabbitmq_url=rabbitmq_url,
                telegram_api_base=h.standin.base_url,
                notifier_release_interval_seconds=0.01,
            ),
            clock=clock,
        )
        await start(second)
        try:
            users = new_users(30)
            events = []
            for user, chat in users:
                await h.link(user, chat, **QUIET)
                for n in range(2):
                    events.append(
                        await h.publish("post_failure", user, {"platform": "x", "error": f"#{n}"})
                    )
            for event in events:
                await h.wait_delivery(event, "held")
            clock.now = MORNING
            for event in events:
                await h.wait_delivery(event, "sent")
            for _, chat in users:
                (fold,) = h.texts(chat)
                assert fold.startswith("🌙 방해 금지 시간 동안 온 알림 2건")
        finally:
            await stop(second)


async def test_edits_are_retried_on_5xx_and_given_up_when_the_message_is_gone(
    database_url, rabbitmq_url
):
    async with notifier(database_url, rabbitmq_url, notifier_max_attempts=3) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        success = await h.publish("post_success", user, SUCCESS)
        await h.wait_delivery(success, "sent")

        h.standin.add_fault(method="editMessageText", error_code=502, count=2)
        update = await h.publish(
            "post_metrics_updated", user, {"post_id": "post-1", "likes": 7, "comments": 7}
        )
        row = await h.wait_delivery(update, "edited")
        assert row["attempts"] == 3
        assert "👥 좋아요: 7 | 댓글: 7\n" in h.texts(chat)[0]

        h.standin.add_fault(
            method="editMessageText",
            error_code=400,
            description="Bad Request: message to edit not found",
        )
        gone = await h.publish(
            "post_metrics_updated", user, {"post_id": "post-1", "likes": 8, "comments": 8}
        )
        row = await h.wait_delivery(gone, "undeliverable")
        assert "message to edit not found" in row["error"]
        assert len(h.texts(chat)) == 1
