"""The daily report from recorded activity, once per user and day, resends on purpose only."""

from datetime import UTC, date, datetime

import pytest

from shared.contract import EventType, sample_data
from tests.notifier.harness import running_notifier
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

DAY = "2026-02-26"


def at(hour: int, day: int = 26) -> datetime:
    return datetime(2026, 2, day, hour, 30, tzinfo=UTC)


async def record_day(h, user):
    """Five posts (3 Instagram, 2 Twitter), one failure, an automation, and noise on other days."""
    events = []
    for likes, comments in ((1000, 100), (100, 30), (4, 0)):
        events += [
            await h.publish(
                "post_success",
                user,
                {"platform": "instagram", "likes": likes, "comments": comments},
                occurred_at=at(10),
            )
        ]
    events.append(
        await h.publish(
            "post_success",
            user,
            {"platform": "twitter", "likes": 1000, "comments": 111},
            occurred_at=at(23),
        )
    )
    await h.publish("post_failure", user, {"platform": "twitter", "error": "x"}, occurred_at=at(0))
    await h.publish(
        "automation_executed",
        user,
        {"automation_name": "r", "platforms": ["instagram"], "execution_time": "t"},
        occurred_at=at(9),
    )
    await h.publish(
        "post_success",
        user,
        {"platform": "instagram", "likes": 9, "comments": 9},
        occurred_at=at(10, day=25),
    )
    events.append(
        await h.publish(
            "post_success",
            user,
            {"platform": "instagram", "likes": 9, "comments": 9},
            occurred_at=at(0, day=27),
        )
    )
    for event in events:  # all recorded (and skipped: not linked yet) before the trigger
        await h.wait_delivery(event, "skipped")


REPORT = (
    "📊 일일 SNS 리포트\n\n"
    "📝 게시물: 5개\n✅ 성공: 4개\n❌ 실패: 1개\n👥 총 참여: 2,345\n\n"
    "플랫폼별 통계:\n📸 Instagram: 3 게시 | 👥 1,234\n🐦 Twitter: 2 게시 | 👥 1,111\n\n"
    "📅 2026-02-26"
)


async def test_the_report_aggregates_the_users_day_and_is_sent_once(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await record_day(h, user)  # recorded before the user even linked
        await h.link(user, chat)
        first = await h.publish("daily_summary", user, {"date": DAY})
        await h.wait_delivery(first, "sent")
        assert h.texts(chat) == [REPORT]

        again = await h.publish("daily_summary", user, {"date": DAY})  # a second trigger
        resend = await h.publish("daily_summary", user, {"date": DAY, "resend": True})
        await h.wait_delivery(resend, "sent")
        assert (
            await h.delivery(again) is None
        )  # deduplicated on (user, day): no delivery of its own
        assert h.texts(chat) == [REPORT, REPORT]


async def test_the_day_is_the_users_local_day(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat, timezone="Asia/Seoul")
        # 2026-02-25 16:00 UTC is 2026-02-26 01:00 in Seoul; 2026-02-26 16:00 UTC is the 27th.
        await h.publish(
            "post_success",
            user,
            {"platform": "tiktok", "likes": 7},
            occurred_at=datetime(2026, 2, 25, 16, tzinfo=UTC),
        )
        await h.publish(
            "post_success",
            user,
            {"platform": "tiktok", "likes": 50},
            occurred_at=datetime(2026, 2, 26, 16, tzinfo=UTC),
        )
        event = await h.publish("daily_summary", user, {"date": DAY, "timezone": "Asia/Seoul"})
        await h.wait_delivery(event, "sent")
        (text,) = [t for t in h.texts(chat) if t.startswith("📊")]
        assert "📝 게시물: 1개" in text and "🎵 TikTok: 1 게시 | 👥 7" in text


async def test_totals_supplied_by_the_publisher_are_rendered_as_given(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        # The specification's example: 5 posts (3 Instagram, 2 Twitter), engagement 2,345.
        totals = sample_data(EventType.DAILY_SUMMARY, date.fromisoformat(DAY))
        event = await h.publish("daily_summary", user, totals)
        await h.wait_delivery(event, "sent")
        assert h.texts(chat) == [
            REPORT.replace("✅ 성공: 4개\n❌ 실패: 1개", "✅ 성공: 5개\n❌ 실패: 0개")
        ]
