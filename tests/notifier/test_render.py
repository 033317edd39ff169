"""Rendering beyond the specification's examples: omitted lines, platforms, escaping and length.

Each type's text as the specification shows it, in each language, is its golden text
(`tests/notifier/goldens/`, checked by `tests/unit/test_notification_types.py`)."""

import html
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifier.render import (
    MAX_CAPTION_LENGTH,
    MAX_MESSAGE_LENGTH,
    DailyReport,
    PlatformTotals,
    format_timestamp,
    platform_emoji,
    platform_name,
    render_automation_executed,
    render_caption,
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


@settings(max_examples=80, deadline=None)
@given(
    content=huge,
    url=huge,
    error=huge,
    platform=st.text(min_size=1, max_size=64),
    language=st.sampled_from(["ko", "en"]),
)
def test_a_caption_always_fits_and_is_the_text_whenever_the_text_fits(
    content, url, error, platform, language
):
    success = PostSuccessData.model_construct(platform=platform, content=content, post_url=url,
                                              likes=12, comments=3)  # fmt: skip
    failure = PostFailureData.model_construct(platform=platform, error=error)
    for data, template in ((success, render_post_success), (failure, render_post_failure)):
        text, caption = template(data, AT, language), render_caption(data, AT, language)
        assert 0 < visible_length(caption) <= MAX_CAPTION_LENGTH
        if visible_length(text) <= MAX_CAPTION_LENGTH:
            assert caption == text
        # Only the content, the link or the error give way: the title and the closing lines
        # (the counts, the time, the dashboard hint) stay whole.
        lines, shown = text.split("\n"), caption.split("\n")
        assert shown[0] == lines[0] and shown[-2:] == lines[-2:]


def test_a_caption_cuts_the_content_before_the_link():
    data = PostSuccessData(platform="instagram", content="가" * 180,
                           post_url="https://x.com/" + "a" * 820)  # fmt: skip
    caption = render_caption(data, AT)
    assert visible_length(render_post_success(data, AT)) > MAX_CAPTION_LENGTH
    assert f"🔗 {data.post_url}" in caption.split("\n")
    assert "📝 " + "가" * 10 in caption and caption.count("가") < 180 and "가..." in caption
