"""English beyond the specification's examples (those are golden texts, `tests/notifier/goldens/`),
and the quiet-hours fold in both languages."""

from datetime import date

import pytest

from services.notifier.render import (
    MAX_MESSAGE_LENGTH,
    DailyReport,
    PlatformTotals,
    render_automation_executed,
    render_daily_summary,
    render_post_failure,
    render_quiet_fold,
    visible_length,
)
from shared.contract import AutomationExecutedData, PostFailureData
from tests.support.examples import AT

pytestmark = pytest.mark.unit


def test_post_failure_without_an_error_message_in_english():
    text = render_post_failure(PostFailureData(platform="x", error=""), AT, "en")
    assert "⚠️ Error: Unknown error\n" in text


def test_automation_with_many_platforms_in_english():
    data = AutomationExecutedData(
        automation_name="r", platforms=[f"p{i}" for i in range(32)], execution_time="t"
    )
    assert ", P29 and 2 more\n" in render_automation_executed(data, AT, "en")


def test_daily_summary_in_english():
    report = DailyReport(
        day=date(2026, 2, 26),
        total_posts=4,
        successful_posts=4,
        failed_posts=0,
        total_engagement=2345,
        platforms={
            "twitter": PlatformTotals(posts=1, engagement=1111),
            "instagram": PlatformTotals(posts=3, engagement=1234),
        },
    )
    assert render_daily_summary(report, "en") == (
        "📊 Daily SNS report\n"
        "\n"
        "📝 Posts: 4\n"
        "✅ Successful: 4\n"
        "❌ Failed: 0\n"
        "👥 Total engagement: 2,345\n"
        "\n"
        "By platform:\n"
        "📸 Instagram: 3 posts | 👥 1,234\n"
        "🐦 Twitter: 1 post | 👥 1,111\n"
        "\n"
        "📅 2026-02-26"
    )


def test_an_unknown_language_is_korean():
    data = PostFailureData(platform="instagram", error="e")
    assert render_post_failure(data, AT, "fr") == render_post_failure(data, AT)


FIRST = render_post_failure(PostFailureData(platform="x", error="one"), AT)
SECOND = render_post_failure(PostFailureData(platform="x", error="two"), AT)


def test_quiet_hours_fold_in_korean():
    assert render_quiet_fold([FIRST, SECOND]) == (
        f"🌙 방해 금지 시간 동안 온 알림 2건\n\n────────\n\n{FIRST}\n\n────────\n\n{SECOND}"
    )


def test_quiet_hours_fold_in_english():
    assert render_quiet_fold([FIRST, SECOND], "en") == (
        f"🌙 2 notifications during quiet hours\n\n────────\n\n{FIRST}\n\n────────\n\n{SECOND}"
    )


@pytest.mark.parametrize("language", ["ko", "en"])
def test_a_fold_too_long_for_one_message_counts_the_rest(language):
    long_failure = PostFailureData(platform="x", error="&<" * 600)  # escaped: 3,600 raw chars
    texts = [render_post_failure(long_failure, AT, language) for _ in range(10)]
    fold = render_quiet_fold(texts, language)
    assert visible_length(fold) <= MAX_MESSAGE_LENGTH
    shown = fold.count("⚠️")
    assert 1 <= shown < 10
    closing = fold.rsplit("\n\n────────\n\n", 1)[1]
    assert closing == ("… 외 {}건" if language == "ko" else "… and {} more").format(10 - shown)
    assert fold.startswith("🌙 방해 금지 시간 동안 온 알림 10건" if language == "ko" else "🌙 10")
