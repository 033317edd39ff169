"""Rendering beyond the specification's examples: omitted lines, platforms, escaping and length.

Each type's text as the specification shows it, in each language, is its golden text
(`tests/notifier/goldens/`, checked by `tests/unit/test_notification_types.py`)."""

import html
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifier.render import (
    MAX_MESSAGE_LENGTH,
    DailyReport,
    PlatformTotals,
    format_timestamp,
    platform_emoji,
    platform_name,
    render_automation_executed,
    render_daily_summary,
    render_post_failure,
    render_post_success,
    visible_length,
)
from shared.contract import AutomationExecutedData, PostFailureData, PostSuccessData
from tests.support.examples import AT

pytestmark = pytest.mark.unit


def test_post_success_without_content_or_url_omits_those_lines():
    text = render_post_success(PostSuccessData(platform="twitter", likes=0, comments=0), AT)
    assert (
        text == "✅ SNS 게시 완료\n\n🐦 Twitter\n👥 좋아요: 0 | 댓글: 0\n⏰ 2026-02-26 10:30:00 UTC"
    )


def test_daily_summary_of_a_quiet_day_has_no_platform_section():
    assert render_daily_summary(DailyReport(day=date(2026, 2, 26))) == (
        "📊 일일 SNS 리포트\n\n📝 게시물: 0개\n✅ 성공: 0개\n❌ 실패: 0개\n👥 총 참여: 0\n\n📅 2026-02-26"
    )


@pytest.mark.parametrize(
    ("raw", "name", "emoji"),
    [
        ("instagram", "Instagram", "📸"),
        ("Instagram", "Instagram", "📸"),
        ("twitter", "Twitter", "🐦"),
        ("facebook", "Facebook", "📘"),
        ("youtube", "YouTube", "▶️"),
        ("tiktok", "TikTok", "🎵"),
        ("linkedin", "LinkedIn", "💼"),
        ("threads", "Threads", "🧵"),
        ("naver_blog", "Naver Blog", "📗"),
        ("myspace", "Myspace", "📱"),
        ("WeChat", "WeChat", "📱"),
    ],
)
def test_platform_display_names_and_emoji(raw, name, emoji):
    assert (platform_name(raw), platform_emoji(raw)) == (name, emoji)


def test_timestamps_are_shown_in_utc():
    from zoneinfo import ZoneInfo

    seoul = datetime(2026, 2, 26, 19, 30, tzinfo=ZoneInfo("Asia/Seoul"))
    assert format_timestamp(seoul) == "2026-02-26 10:30:00 UTC"


def test_user_text_is_html_escaped():
    data = PostFailureData(platform="<b>x</b>", error='<script>alert("x")</script> & more')
    text = render_post_failure(data, AT)
    assert "<script>" not in text and "<b>" not in text
    assert '⚠️ 오류: &lt;script&gt;alert("x")&lt;/script&gt; &amp; more' in text
    assert '<script>alert("x")</script> & more' in html.unescape(text)


def test_long_content_preview_is_shortened():
    data = PostSuccessData(platform="instagram", content="가" * 5000)
    text = render_post_success(data, AT)
    preview = text.split("\n")[3]
    assert preview.startswith("📝 가") and preview.endswith("...")
    assert len(preview) < 220


huge = st.text(min_size=0, max_size=20_000)


@settings(max_examples=60, deadline=None)
@given(
    content=huge,
    url=huge,
    error=huge,
    name=huge,
    platforms=st.lists(huge, min_size=1, max_size=200),
)
def test_every_message_fits_telegram_whatever_the_input(content, url, error, name, platforms):
    platform = platforms[0] or "x"
    texts = [
        render_post_success(
            # Built unchecked: the renderer copes even with what the contract refuses.
            PostSuccessData.model_construct(platform=platform, content=content, post_url=url),
            AT,
        ),
        render_post_failure(PostFailureData(platform="x", error=error), AT),
        render_automation_executed(
            AutomationExecutedData.model_construct(
                automation_name=name, platforms=platforms, execution_time=error
            ),
            AT,
        ),
        render_daily_summary(
            DailyReport(
                day=date(2026, 2, 26), platforms={p: PlatformTotals(1, 1) for p in platforms}
            )
        ),
    ]
    for text in texts:
        assert 0 < visible_length(text) <= MAX_MESSAGE_LENGTH


def test_control_characters_and_lone_surrogates_are_removed():
    data = PostFailureData(platform="x", error="bad\x00\x1b[31m\ud800 end\nline")
    text = render_post_failure(data, AT)
    assert "⚠️ 오류: bad[31m? end\nline" in text
    text.encode("utf-8")
