"""Rendering notifications: pure functions returning the exact texts of the spec.

Every function returns Telegram HTML (parse mode HTML): user-supplied text is escaped, and each
user field is capped so the visible message always fits Telegram's 4096-character limit.
Korean (`ko`, the spec's texts) is the default language; `en` is the same message in English.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from services.common.platforms import platform_emoji, platform_name
from shared.contract import (
    AutomationExecutedData,
    EventType,
    PostFailureData,
    PostSuccessData,
)

MAX_MESSAGE_LENGTH = 4096
"""Telegram's limit on a message's text after entity parsing (counted in UTF-16 code units)."""
MAX_CAPTION_LENGTH = 1024
"""Telegram's limit on a photo's caption, counted the same way."""

CONTENT_PREVIEW_CHARS = 200
URL_CHARS = 1000
ERROR_CHARS = 1000
NAME_CHARS = 200
PLATFORM_NAME_CHARS = 40
MAX_PLATFORMS_LISTED = 30

LANGUAGES = ("ko", "en")
DEFAULT_LANGUAGE = "ko"


@dataclass(frozen=True)
class Labels:
    """The fixed words of every template in one language (`{}` fields filled by the renderer)."""

    success_title: str
    likes_comments: str
    failure_title: str
    platform: str
    error: str
    unknown_error: str
    see_dashboard: str
    automation_title: str
    rule: str
    platforms: str
    status_done: str
    execution_time: str
    more_platforms_inline: str
    summary_title: str
    posts: str
    successful: str
    failed: str
    engagement: str
    by_platform: str
    platform_posts_one: str
    platform_posts_many: str
    more_platforms_line: str
    quiet_header: str
    more_notifications: str
    digest_header: str
    view_post: str
    retry: str
    mute_type: str
    topic_gone: str


KO = Labels(
    success_title="✅ SNS 게시 완료",
    likes_comments="👥 좋아요: {likes} | 댓글: {comments}",
    failure_title="❌ SNS 게시 실패",
    platform="📱 플랫폼: {}",
    error="⚠️ 오류: {}",
    unknown_error="알 수 없는 오류",
    see_dashboard="자세한 내용은 대시보드에서 확인하세요.",
    automation_title="🤖 자동화 규칙 실행",
    rule="📋 규칙: {}",
    platforms="📱 플랫폼: {}",
    status_done="✅ 상태: 완료",
    execution_time="⏰ 실행 시간: {}",
    more_platforms_inline=" 외 {}개",
    summary_title="📊 일일 SNS 리포트",
    posts="📝 게시물: {}개",
    successful="✅ 성공: {}개",
    failed="❌ 실패: {}개",
    engagement="👥 총 참여: {}",
    by_platform="플랫폼별 통계:",
    platform_posts_one="{} 게시",
    platform_posts_many="{} 게시",
    more_platforms_line="외 {}개 플랫폼",
    quiet_header="🌙 방해 금지 시간 동안 온 알림 {}건",
    more_notifications="… 외 {}건",
    digest_header="📬 새 알림 {}건",
    view_post="🔗 게시물 보기",
    retry="🔄 다시 시도",
    mute_type="🔕 이 유형 알림 끄기",
    topic_gone="ℹ️ 알림을 보내던 토픽이 닫혔거나 삭제되어, 이제부터 일반(General)으로 보냅니다.",
)

EN = Labels(
    success_title="✅ SNS post published",
    likes_comments="👥 Likes: {likes} | Comments: {comments}",
    failure_title="❌ SNS post failed",
    platform="📱 Platform: {}",
    error="⚠️ Error: {}",
    unknown_error="Unknown error",
    see_dashboard="See the dashboard for details.",
    automation_title="🤖 Automation rule executed",
    rule="📋 Rule: {}",
    platforms="📱 Platforms: {}",
    status_done="✅ Status: Completed",
    execution_time="⏰ Execution time: {}",
    more_platforms_inline=" and {} more",
    summary_title="📊 Daily SNS report",
    posts="📝 Posts: {}",
    successful="✅ Successful: {}",
    failed="❌ Failed: {}",
    engagement="👥 Total engagement: {}",
    by_platform="By platform:",
    platform_posts_one="{} post",
    platform_posts_many="{} posts",
    more_platforms_line="and {} more platforms",
    quiet_header="🌙 {} notifications during quiet hours",
    more_notifications="… and {} more",
    digest_header="📬 {} new notifications",
    view_post="🔗 View post",
    retry="🔄 Retry",
    mute_type="🔕 Mute this type",
    topic_gone="ℹ️ The topic notifications went to was closed or deleted; "
    "they go to General from now on.",
)


def labels(language: str | None) -> Labels:
    """The labels of `language`; Korean for anything else (the spec's default)."""
    return EN if language == "en" else KO


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


def render_post_success(data: PostSuccessData, occurred_at: datetime, language: str = "ko") -> str:
    """The spec's "Post Success Notification"."""
    words = labels(language)
    name = _esc(platform_name(data.platform), PLATFORM_NAME_CHARS)
    lines = [words.success_title, "", f"{platform_emoji(data.platform)} {name}"]
    if data.content.strip():
        lines.append(f"📝 {_esc(data.content, CONTENT_PREVIEW_CHARS)}")
    if data.post_url and data.post_url.strip():
        lines.append(f"🔗 {_esc(data.post_url, URL_CHARS)}")
    lines.append(
        words.likes_comments.format(likes=number(data.likes), comments=number(data.comments))
    )
    lines.append(f"⏰ {format_timestamp(occurred_at)}")
    return "\n".join(lines)


def render_post_failure(data: PostFailureData, occurred_at: datetime, language: str = "ko") -> str:
    """The spec's "Post Failure Notification"."""
    words = labels(language)
    return "\n".join(
        [
            words.failure_title,
            "",
            words.platform.format(_esc(platform_name(data.platform), PLATFORM_NAME_CHARS)),
            words.error.format(_esc(data.error or words.unknown_error, ERROR_CHARS)),
            f"⏰ {format_timestamp(occurred_at)}",
            "",
            words.see_dashboard,
        ]
    )


def _platform_list(platforms: list[str], words: Labels = KO) -> str:
    names = [platform_name(p) for p in platforms[:MAX_PLATFORMS_LISTED]]
    listed = ", ".join(_esc(n, PLATFORM_NAME_CHARS) for n in names)
    hidden = len(platforms) - len(names)
    return listed + (words.more_platforms_inline.format(hidden) if hidden > 0 else "")


def render_automation_executed(
    data: AutomationExecutedData, occurred_at: datetime, language: str = "ko"
) -> str:
    """The spec's "Automation Executed Notification"."""
    words = labels(language)
    return "\n".join(
        [
            words.automation_title,
            "",
            words.rule.format(_esc(data.automation_name, NAME_CHARS)),
            words.platforms.format(_platform_list(data.platforms, words)),
            words.status_done,
            words.execution_time.format(_esc(data.execution_time, NAME_CHARS)),
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


def render_daily_summary(report: DailyReport, language: str = "ko") -> str:
    """The spec's "Daily Summary Notification"."""
    words = labels(language)
    lines = [
        words.summary_title,
        "",
        words.posts.format(number(report.total_posts)),
        words.successful.format(number(report.successful_posts)),
        words.failed.format(number(report.failed_posts)),
        words.engagement.format(number(report.total_engagement)),
    ]
    if report.platforms:
        ranked = sorted(
            report.platforms.items(), key=lambda kv: (-kv[1].posts, -kv[1].engagement, kv[0])
        )
        lines += ["", words.by_platform]
        for key, totals in ranked[:MAX_PLATFORMS_LISTED]:
            name = _esc(platform_name(key), PLATFORM_NAME_CHARS)
            posts = words.platform_posts_one if totals.posts == 1 else words.platform_posts_many
            lines.append(
                f"{platform_emoji(key)} {name}: {posts.format(number(totals.posts))} | "
                f"👥 {number(totals.engagement)}"
            )
        if len(ranked) > MAX_PLATFORMS_LISTED:
            lines.append(words.more_platforms_line.format(len(ranked) - MAX_PLATFORMS_LISTED))
    lines += ["", f"📅 {report.day.isoformat()}"]
    return "\n".join(lines)


CAPTIONED: dict[type, tuple[Callable[[Any, datetime, str], str], tuple[str, ...]]] = {
    PostSuccessData: (render_post_success, ("content", "post_url")),
    PostFailureData: (render_post_failure, ("error",)),
}
"""The types that may be sent as a photo: their template, and the fields shortened, in order,
until the text fits a caption."""


def render_caption(
    data: PostSuccessData | PostFailureData, occurred_at: datetime, language: str = "ko"
) -> str:
    """The template's text as a photo's caption (at most 1024 characters as Telegram counts):
    the content preview (a failure's error) is shortened first, then the post link; the rest of
    the template always fits."""
    template, shortened = CAPTIONED[type(data)]
    text = template(data, occurred_at, language)
    for name in shortened:
        if visible_length(text) <= MAX_CAPTION_LENGTH:
            break
        data, text = _shorten(data, name, lambda d: template(d, occurred_at, language))
    return text


def _shorten(data: Any, name: str, template: Callable[[Any], str]) -> tuple[Any, str]:
    """`data` with field `name` cut to the longest prefix (marked "...") whose text fits a
    caption, or emptied if none does; and that text (a binary search: about ten renders)."""
    value = clean(getattr(data, name) or "").strip()
    best = data.model_copy(update={name: ""})
    low, high = 0, len(value)  # the prefix of length `low` fits (0: the field emptied)
    while low < high:
        middle = (low + high + 1) // 2
        cut = data.model_copy(update={name: value[:middle].rstrip() + "..."})
        if visible_length(template(cut)) <= MAX_CAPTION_LENGTH:
            low, best = middle, cut
        else:
            high = middle - 1
    return best, template(best)


Template = Callable[[Any, datetime, str], str]
"""A type's template: its data (a daily summary's: its `DailyReport`), when it happened, and the
language."""

TEMPLATES: dict[EventType, Template] = {
    EventType.POST_SUCCESS: render_post_success,
    EventType.POST_FAILURE: render_post_failure,
    EventType.AUTOMATION_EXECUTED: render_automation_executed,
    EventType.DAILY_SUMMARY: lambda report, _, language: render_daily_summary(report, language),
}
"""The template of each type the notifier sends a message of (`shared.contract.MESSAGE_TYPES`);
each has golden texts in `tests/notifier/goldens/`."""


FOLD_SEPARATOR = "\n\n────────\n\n"
"""Between the notifications folded into one quiet-hours message."""


def render_quiet_fold(texts: list[str], language: str = "ko") -> str:
    """Notifications held during quiet hours as one message: a header, then each text in order.

    Texts are whole rendered messages (HTML); they are never cut, so no entity is broken. Those
    that would push the message past Telegram's limit are counted in a closing `… 외 N건` line.
    """
    words = labels(language)
    header = words.quiet_header.format(number(len(texts)))
    # Room for the closing line, whatever N turns out to be.
    reserve = visible_length(FOLD_SEPARATOR + words.more_notifications.format(number(len(texts))))
    shown: list[str] = []
    used = visible_length(header)
    for index, text in enumerate(texts):
        cost = visible_length(FOLD_SEPARATOR + text)
        is_last = index == len(texts) - 1
        if used + cost + (0 if is_last else reserve) > MAX_MESSAGE_LENGTH:
            break
        shown.append(text)
        used += cost
    parts = [header, *shown]
    hidden = len(texts) - len(shown)
    if hidden:
        parts.append(words.more_notifications.format(number(hidden)))
    return FOLD_SEPARATOR.join(parts)


def render_digest(texts: list[str], language: str = "ko") -> str:
    """Notifications that reached one chat in a burst, as one message: a header, then each text.

    The caller picks texts that fit (`digest_fits`); nothing is cut here.
    """
    header = labels(language).digest_header.format(number(len(texts)))
    return FOLD_SEPARATOR.join([header, *texts])


def digest_fits(texts: list[str], language: str = "ko") -> bool:
    """True when `render_digest(texts)` stays within Telegram's message length."""
    return visible_length(render_digest(texts, language)) <= MAX_MESSAGE_LENGTH
