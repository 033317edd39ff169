"""Rendering notifications: pure functions returning the exact texts of the spec.

Every function returns Telegram HTML (parse mode HTML): user-supplied text is escaped, and each
user field is capped so the visible message always fits Telegram's 4096-character limit.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from shared.contract import (
    AutomationExecutedData,
    PostFailureData,
    PostSuccessData,
)

MAX_MESSAGE_LENGTH = 4096
"""Telegram's limit on a message's text after entity parsing (counted in UTF-16 code units)."""

CONTENT_PREVIEW_CHARS = 200
URL_CHARS = 1000
ERROR_CHARS = 1000
NAME_CHARS = 200
PLATFORM_NAME_CHARS = 40
MAX_PLATFORMS_LISTED = 30

TEST_MESSAGE = "🧪 테스트 메시지\n\nTelegram 연동이 정상적으로 작동합니다! ✅"
"""The spec's test message (sent by the linker's send-test-message endpoint)."""

# (display name, emoji) of the platforms the SNS platform posts to.
PLATFORMS: dict[str, tuple[str, str]] = {
    "instagram": ("Instagram", "📸"),
    "twitter": ("Twitter", "🐦"),
    "x": ("X", "🐦"),
    "facebook": ("Facebook", "📘"),
    "threads": ("Threads", "🧵"),
    "tiktok": ("TikTok", "🎵"),
    "youtube": ("YouTube", "▶️"),
    "linkedin": ("LinkedIn", "💼"),
    "pinterest": ("Pinterest", "📌"),
    "reddit": ("Reddit", "👽"),
    "tumblr": ("Tumblr", "📓"),
    "telegram": ("Telegram", "✈️"),
    "naver_blog": ("Naver Blog", "📗"),
    "naver": ("Naver", "📗"),
    "kakao": ("Kakao", "💬"),
    "kakaostory": ("KakaoStory", "💬"),
    "mastodon": ("Mastodon", "🐘"),
    "bluesky": ("Bluesky", "🦋"),
}
DEFAULT_PLATFORM_EMOJI = "📱"


_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10)) | {127: None}


def clean(text: str) -> str:
    """Drop control characters and lone surrogates that Telegram (or UTF-8) would refuse."""
    return text.encode("utf-8", "replace").decode("utf-8").translate(_CONTROL)


def _cut(text: str, limit: int) -> str:
    """`text` cleaned and shortened to `limit` characters, marked with an ellipsis when cut."""
    text = clean(text).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _esc(text: str, limit: int) -> str:
    return html.escape(_cut(text, limit), quote=False)


def platform_key(platform: str) -> str:
    """The canonical key of a platform name (`Instagram ` → `instagram`)."""
    return platform.strip().lower().replace(" ", "_").replace("-", "_")


def platform_name(platform: str) -> str:
    """The display name of a platform (`instagram` → `Instagram`); unknown ones title-cased."""
    known = PLATFORMS.get(platform_key(platform))
    if known:
        return known[0]
    cleaned = platform.strip().replace("_", " ")
    return cleaned if any(c.isupper() for c in cleaned) else cleaned.title()


def platform_emoji(platform: str) -> str:
    """The platform's emoji (`instagram` → 📸), or 📱 for one we don't know."""
    known = PLATFORMS.get(platform_key(platform))
    return known[1] if known else DEFAULT_PLATFORM_EMOJI


def format_timestamp(moment: datetime) -> str:
    """`2026-02-26 10:30:00 UTC`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: int) -> str:
    """Thousands separators: 1234 → `1,234`."""
    return f"{value:,}"


def visible_length(text: str) -> int:
    """Length Telegram counts (UTF-16 code units) of the text a reader sees."""
    return len(html.unescape(text).encode("utf-16-le")) // 2


def render_post_success(data: PostSuccessData, occurred_at: datetime) -> str:
    """The spec's "Post Success Notification"."""
    name = _esc(platform_name(data.platform), PLATFORM_NAME_CHARS)
    lines = ["✅ SNS 게시 완료", "", f"{platform_emoji(data.platform)} {name}"]
    if data.content.strip():
        lines.append(f"📝 {_esc(data.content, CONTENT_PREVIEW_CHARS)}")
    if data.post_url and data.post_url.strip():
        lines.append(f"🔗 {_esc(data.post_url, URL_CHARS)}")
    lines.append(f"👥 좋아요: {number(data.likes)} | 댓글: {number(data.comments)}")
    lines.append(f"⏰ {format_timestamp(occurred_at)}")
    return "\n".join(lines)


def render_post_failure(data: PostFailureData, occurred_at: datetime) -> str:
    """The spec's "Post Failure Notification"."""
    return "\n".join(
        [
            "❌ SNS 게시 실패",
            "",
            f"📱 플랫폼: {_esc(platform_name(data.platform), PLATFORM_NAME_CHARS)}",
            f"⚠️ 오류: {_esc(data.error or '알 수 없는 오류', ERROR_CHARS)}",
            f"⏰ {format_timestamp(occurred_at)}",
            "",
            "자세한 내용은 대시보드에서 확인하세요.",
        ]
    )


def _platform_list(platforms: list[str]) -> str:
    names = [platform_name(p) for p in platforms[:MAX_PLATFORMS_LISTED]]
    listed = ", ".join(_esc(n, PLATFORM_NAME_CHARS) for n in names)
    hidden = len(platforms) - len(names)
    return listed + (f" 외 {hidden}개" if hidden > 0 else "")


def render_automation_executed(data: AutomationExecutedData, occurred_at: datetime) -> str:
    """The spec's "Automation Executed Notification"."""
    return "\n".join(
        [
            "🤖 자동화 규칙 실행",
            "",
            f"📋 규칙: {_esc(data.automation_name, NAME_CHARS)}",
            f"📱 플랫폼: {_platform_list(data.platforms)}",
            "✅ 상태: 완료",
            f"⏰ 실행 시간: {_esc(data.execution_time, NAME_CHARS)}",
            f"📅 {format_timestamp(occurred_at)}",
        ]
    )


@dataclass(frozen=True)
class PlatformTotals:
    """One platform's numbers in a daily report."""

    posts: int = 0
    engagement: int = 0


@dataclass(frozen=True)
class DailyReport:
    """The numbers of one user's daily report."""

    day: date
    total_posts: int = 0
    successful_posts: int = 0
    failed_posts: int = 0
    total_engagement: int = 0
    platforms: dict[str, PlatformTotals] = field(default_factory=dict)


def render_daily_summary(report: DailyReport) -> str:
    """The spec's "Daily Summary Notification"."""
    lines = [
        "📊 일일 SNS 리포트",
        "",
        f"📝 게시물: {number(report.total_posts)}개",
        f"✅ 성공: {number(report.successful_posts)}개",
        f"❌ 실패: {number(report.failed_posts)}개",
        f"👥 총 참여: {number(report.total_engagement)}",
    ]
    if report.platforms:
        ranked = sorted(
            report.platforms.items(), key=lambda kv: (-kv[1].posts, -kv[1].engagement, kv[0])
        )
        lines += ["", "플랫폼별 통계:"]
        for key, totals in ranked[:MAX_PLATFORMS_LISTED]:
            name = _esc(platform_name(key), PLATFORM_NAME_CHARS)
            lines.append(
                f"{platform_emoji(key)} {name}: {number(totals.posts)} 게시 | "
                f"👥 {number(totals.engagement)}"
            )
        if len(ranked) > MAX_PLATFORMS_LISTED:
            lines.append(f"외 {len(ranked) - MAX_PLATFORMS_LISTED}개 플랫폼")
    lines += ["", f"📅 {report.day.isoformat()}"]
    return "\n".join(lines)
