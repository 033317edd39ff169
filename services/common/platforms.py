"""The SNS platforms as people read them: display name and emoji of each platform key.

The notifier's templates name and mark platforms with these; the linker names the platform in
its answer to a Retry press the same way.
"""

from __future__ import annotations

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
"""(display name, emoji) of the platforms the SNS platform posts to, by `platform_key`."""
DEFAULT_PLATFORM_EMOJI = "📱"


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
