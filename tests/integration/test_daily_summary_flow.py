"""The daily summary end to end: the scheduler's 09:00 tick reaches the notifier, which sends the
spec's report of the user's previous local day, once, however many ticks and replicas."""

from datetime import UTC, datetime, time

import pytest

from tests.notifier.harness import running_notifier
from tests.scheduler.harness import make_settings, start_replica
from tests.support.ids import new_chat_id, new_user
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_the_scheduled_trigger_becomes_the_spec_report(fresh_database_url, rabbitmq_url):
    async with running_notifier(fresh_database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        seoul, seoul_chat = new_user(), new_chat_id()
        await h.link(user, chat)
        await h.link(seoul, seoul_chat, timezone="Asia/Seoul", summary_time=time(18))
        day = datetime(2026, 2, 26, 10, 30, tzinfo=UTC)
        posts = [
            ("instagram", 1000, 100),
            ("instagram", 100, 30),
            ("instagram", 4, 0),
            ("twitter", 1000, 111),
        ]
        for platform, likes, comments in posts:
            event = await h.publish(
                "post_success", user, {"platform": platform, "likes": likes, "comments": comments},
                occurred_at=day,
            )  # fmt: skip
        failure = await h.publish(
            "post_failure", user, {"platform": "twitter", "error": "x"}, occurred_at=day
        )
        await h.wait_delivery(failure, "sent")
        await h.wait_delivery(event, "sent")

        settings = make_settings(fresh_database_url, rabbitmq_url)
        # Two replicas running since before 09:00 UTC on the 27th (18:00 in Seoul) tick past it.
        before = datetime(2026, 2, 27, 8, 59, tzinfo=UTC)
        replicas = [await start_replica(settings, before, name=f"r{i}") for i in range(2)]
        try:
            for replica in replicas:
                await replica.job.tick()
            for _ in range(2):
                for replica in replicas:
                    replica.clock.set(datetime(2026, 2, 27, 9, 0, 5, tzinfo=UTC))
                    await replica.job.tick()
            await eventually(lambda: any(t.startswith("📊") for t in h.texts(chat)), timeout=30)
            await eventually(
                lambda: any(t.startswith("📊") for t in h.texts(seoul_chat)), timeout=30
            )
        finally:
            for replica in replicas:
                await replica.close()
        reports = [t for t in h.texts(chat) if t.startswith("📊")]
        assert reports == [
            "📊 일일 SNS 리포트\n\n📝 게시물: 5개\n✅ 성공: 4개\n❌ 실패: 1개\n👥 총 참여: 2,345\n\n"
            "플랫폼별 통계:\n📸 Instagram: 3 게시 | 👥 1,234\n🐦 Twitter: 2 게시 | 👥 1,111\n\n"
            "📅 2026-02-26"
        ]
        # At 18:00 in Seoul the report covers the 26th there: nothing posted, exactly one report.
        (seoul_report,) = [t for t in h.texts(seoul_chat) if t.startswith("📊")]
        assert "📝 게시물: 0개" in seoul_report and seoul_report.endswith("📅 2026-02-26")
