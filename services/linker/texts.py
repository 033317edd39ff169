"""Every text the linker sends to a Telegram chat, in one place.

Korean, like the spec; what is about a chat's settings, /help, /status and the test message are
also in English, for `language: en`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import time

from services.common.platforms import platform_name
from services.linker.preferences import MUTABLE_TYPES, QUIET_PRESETS, Preferences, hhmm
from services.linker.tokens import TokenProblem
from shared.contract import TYPES

TEST_MESSAGE = "🧪 테스트 메시지\n\nTelegram 연동이 정상적으로 작동합니다! ✅"
TEST_MESSAGE_EN = "🧪 Test message\n\nThe Telegram integration works! ✅"

LINKED = (
    "✅ Telegram 계정이 연결되었습니다!\n\n"
    "이제 SNS 게시 결과, 자동화 실행, 일일 리포트 알림을 이 채팅에서 받습니다.\n"
    "알림을 끄려면 /stop 을 보내세요."
)
ALREADY_LINKED = "✅ 이 채팅은 이미 계정과 연결되어 있습니다. 알림을 계속 받습니다."
RESUMED = "🔔 알림이 다시 켜졌습니다. 이 채팅에서 SNS 알림을 계속 받습니다."

_NEW_LINK = "\n\n대시보드의 Telegram 설정에서 새 연결 링크를 받아 다시 시도해 주세요."
TOKEN_REFUSED = {
    TokenProblem.NOT_FOUND: "⚠️ 연결 링크가 올바르지 않습니다." + _NEW_LINK,
    TokenProblem.WRONG_USER: "⚠️ 연결 링크가 올바르지 않습니다." + _NEW_LINK,
    TokenProblem.USED: "⚠️ 이미 사용된 연결 링크입니다." + _NEW_LINK,
    TokenProblem.REVOKED: (
        "⚠️ 더 새로운 연결 링크가 발급되어 이 링크는 사용할 수 없습니다.\n\n"
        "가장 최근에 받은 링크를 열어 주세요."
    ),
    TokenProblem.EXPIRED: "⌛ 연결 링크가 만료되었습니다." + _NEW_LINK,
}


def welcome(token_ttl_seconds: int) -> str:
    """The answer to `/start` without a token: how to link."""
    minutes = max(1, token_ttl_seconds // 60)
    return (
        "👋 안녕하세요! SNS 자동화 알림 봇입니다.\n\n"
        "계정을 연결하려면 대시보드의 Telegram 설정에서 '연결 링크 받기'를 누르고, "
        f"받은 링크를 열어 주세요. 링크는 {minutes}분 동안 한 번만 사용할 수 있습니다.\n\n"
        "도움말: /help"
    )


STATUS_LINKED = "✅ 연결됨: 이 채팅에서 SNS 알림을 받고 있습니다."
STATUS_PAUSED = "⏸ 연결되어 있지만 알림이 꺼져 있습니다. /start 를 보내면 다시 켜집니다."
STATUS_NOT_LINKED = (
    "❌ 이 채팅은 아직 계정과 연결되어 있지 않습니다.\n\n"
    "대시보드의 Telegram 설정에서 연결 링크를 받아 열어 주세요."
)

STATUS_EN = {
    STATUS_LINKED: "✅ Linked: this chat receives SNS notifications.",
    STATUS_PAUSED: "⏸ Linked, but notifications are off. Send /start to turn them back on.",
    STATUS_NOT_LINKED: (
        "❌ This chat is not linked to an account yet.\n\n"
        "Get a linking link in the dashboard's Telegram settings and open it."
    ),
}

STOPPED = (
    "🔕 연결이 해제되었습니다. 더 이상 알림을 보내지 않습니다.\n\n"
    "다시 연결하려면 대시보드에서 새 연결 링크를 받아 주세요."
)
STOP_NOT_LINKED = "이 채팅은 계정과 연결되어 있지 않습니다. 해제할 연결이 없습니다."

LINK_ADMINS_ONLY = (
    "🔒 그룹은 그룹 관리자만 연결할 수 있습니다.\n\n"
    "관리자에게 연결 링크를 열어 달라고 하거나, 개인 채팅에서 연결해 주세요. "
    "링크는 아직 사용되지 않았습니다."
)

HELP = (
    "🤖 SNS 자동화 알림 봇\n\n"
    "/start - 시작하기 (연결 링크로 계정 연결)\n"
    "/status - 연결 상태 확인\n"
    "/settings - 알림 설정 (알림 종류, 방해 금지 시간, 언어)\n"
    "/mute - 알림 끄기 (예: /mute post_success)\n"
    "/unmute - 알림 다시 켜기 (예: /unmute post_success)\n"
    "/stop - 연결 해제 및 알림 중지\n"
    "/help - 도움말\n\n"
    "계정 연결은 대시보드의 Telegram 설정에서 시작합니다."
)

HELP_EN = (
    "🤖 SNS automation notification bot\n\n"
    "/start - get started (link your account with a linking link)\n"
    "/status - check the link\n"
    "/settings - notification settings (types, quiet hours, language)\n"
    "/mute - mute notifications (e.g. /mute post_success)\n"
    "/unmute - turn notifications back on (e.g. /unmute post_success)\n"
    "/stop - unlink and stop notifications\n"
    "/help - this help\n\n"
    "Linking starts in the dashboard's Telegram settings."
)


def help_text(language: str) -> str:
    """The /help message; Korean unless the chat chose English."""
    return HELP_EN if language == "en" else HELP


def status_text(status: str, language: str) -> str:
    """STATUS_LINKED, STATUS_PAUSED or STATUS_NOT_LINKED in the chat's language."""
    return STATUS_EN[status] if language == "en" else status


def test_message(language: str) -> str:
    """The spec's test message (Korean), or its English for a user whose language is `en`."""
    return TEST_MESSAGE_EN if language == "en" else TEST_MESSAGE


COMMANDS = {
    "start": "시작하기",
    "status": "연결 상태 확인",
    "settings": "알림 설정",
    "mute": "알림 끄기",
    "unmute": "알림 다시 켜기",
    "stop": "연결 해제 및 알림 중지",
    "help": "도움말",
}
"""The bot's command menu (setMyCommands)."""

# ------------------------------------------------------------------ settings (ko and en)
TYPE_NAMES: dict[str, Mapping[str, str]] = {
    t.value: spec.names for t, spec in TYPES.items() if spec.names
}
"""Each notification type's name by language (declared in `shared.contract.TYPES`)."""
LANGUAGE_NAMES = {"ko": "한국어", "en": "English"}
CHOSEN = "✅ "

_SETTINGS = {
    "ko": {
        "title": "⚙️ 알림 설정",
        "on": "켜짐",
        "off": "꺼짐",
        "daily_at": "매일 {time}",
        "quiet": "🌙 방해 금지 시간",
        "quiet_note": "이 시간의 알림은 끝날 때 모아서 보냅니다",
        "quiet_note_silent": "이 시간의 알림은 소리 없이 바로 보냅니다",
        "silent": "무음",
        "quiet_hold_button": "🌙 모아서 보내기",
        "quiet_silent_button": "🔈 무음으로 보내기",
        "previews": "🖼 링크 미리보기",
        "previews_on_button": "🖼 미리보기 켜기",
        "previews_off_button": "🚫 미리보기 끄기",
        "images": "📷 게시물 이미지",
        "images_on_button": "📷 이미지 켜기",
        "images_off_button": "🚫 이미지 끄기",
        "topic": "📌 토픽",
        "general_button": "📌 일반(General)으로 옮기기",
        "language": "🌐 언어",
        "timezone": "🕘 시간대",
        "footer": "버튼을 눌러 바꿀 수 있습니다. 시간대와 리포트 시각은 대시보드에서 바꿉니다.",
        "quiet_off_button": "🌙 끄기",
    },
    "en": {
        "title": "⚙️ Notification settings",
        "on": "on",
        "off": "off",
        "daily_at": "daily at {time}",
        "quiet": "🌙 Quiet hours",
        "quiet_note": "notifications in this time are sent together when it ends",
        "quiet_note_silent": "notifications in this time arrive at once, without a sound",
        "silent": "silent",
        "quiet_hold_button": "🌙 Hold until they end",
        "quiet_silent_button": "🔈 Deliver silently",
        "previews": "🖼 Link previews",
        "previews_on_button": "🖼 Previews on",
        "previews_off_button": "🚫 Previews off",
        "images": "📷 Post images",
        "images_on_button": "📷 Images on",
        "images_off_button": "🚫 Images off",
        "topic": "📌 Topic",
        "general_button": "📌 Move to General",
        "language": "🌐 Language",
        "timezone": "🕘 Time zone",
        "footer": (
            "Press a button to change a setting. Time zone and report time are set in the "
            "dashboard."
        ),
        "quiet_off_button": "🌙 Off",
    },
}


def _lang(language: str) -> str:
    return language if language in _SETTINGS else "ko"


def type_name(event_type: str, language: str) -> str:
    """The name of a notification type, as the settings show it."""
    return TYPE_NAMES.get(event_type, {}).get(_lang(language), event_type)


def quiet_range(start: time, end: time) -> str:
    """`22:00–07:00`."""
    return f"{hhmm(start)}–{hhmm(end)}"


def settings_text(prefs: Preferences) -> str:
    """The /settings message: every preference and its current value."""
    t = _SETTINGS[_lang(prefs.language)]
    lines = [t["title"], ""]
    for event_type in MUTABLE_TYPES:
        mode = prefs.mode(event_type)
        state = {"loud": t["on"], "silent": t["silent"], "muted": t["off"]}[mode]
        if event_type == "daily_summary" and mode != "muted":
            state += f" ({t['daily_at'].format(time=hhmm(prefs.summary_time))})"
        lines.append(f"{type_button(event_type, mode, prefs.language)}: {state}")
    if prefs.quiet_hours is None:
        lines.append(f"{t['quiet']}: {t['off']}")
    else:
        quiet = quiet_range(*prefs.quiet_hours)
        note = t["quiet_note_silent"] if prefs.quiet_mode == "silent" else t["quiet_note"]
        lines.append(f"{t['quiet']}: {quiet} ({note})")
    lines.append(f"{t['previews']}: {t['on'] if prefs.link_previews else t['off']}")
    lines.append(f"{t['images']}: {t['on'] if prefs.post_images else t['off']}")
    if prefs.message_thread_id is not None:  # none: the chat itself, nothing to say
        lines.append(f"{t['topic']}: #{prefs.message_thread_id}")
    lines.append(f"{t['language']}: {LANGUAGE_NAMES[_lang(prefs.language)]}")
    lines.append(f"{t['timezone']}: {prefs.timezone}")
    lines += ["", t["footer"]]
    return "\n".join(lines)


MODE_ICONS = {"loud": "🔔", "silent": "🔈", "muted": "🔕"}
"""How each delivery mode is shown: with a sound, without one, not at all."""


def type_button(event_type: str, mode: str, language: str) -> str:
    """A type's mode button: the icon shows its current mode (`MODE_ICONS`)."""
    return f"{MODE_ICONS[mode]} {type_name(event_type, language)}"


def preview_buttons(language: str) -> list[str]:
    """Labels of the link preview buttons: on, then off."""
    t = _SETTINGS[_lang(language)]
    return [t["previews_on_button"], t["previews_off_button"]]


def image_buttons(language: str) -> list[str]:
    """Labels of the post image buttons: on, then off."""
    t = _SETTINGS[_lang(language)]
    return [t["images_on_button"], t["images_off_button"]]


def general_button(language: str) -> str:
    """Label of the button that moves notifications from their forum topic to General."""
    return _SETTINGS[_lang(language)]["general_button"]


def quiet_mode_buttons(language: str) -> list[str]:
    """Labels of what quiet hours do: hold, then deliver silently (`QUIET_MODES`' order)."""
    t = _SETTINGS[_lang(language)]
    return [t["quiet_hold_button"], t["quiet_silent_button"]]


def quiet_buttons(language: str) -> list[str]:
    """Labels of the quiet-hours buttons: off, then each preset."""
    return [_SETTINGS[_lang(language)]["quiet_off_button"]] + [
        quiet_range(start, end) for start, end in QUIET_PRESETS
    ]


_ANSWERS = {
    "ko": {
        "saved": "✅ 설정을 저장했습니다",
        "muted": "🔕 {name} 알림을 끕니다",
        "unmuted": "🔔 {name} 알림을 다시 켭니다",
        "retry_requested": "🔄 재시도를 요청했습니다",
        "retry_unknown": "⚠️ 재시도할 게시물을 찾을 수 없습니다",
        "retry_not_sent": "⚠️ 재시도를 요청하지 못했습니다. 잠시 후 다시 눌러 주세요",
        "invalid": "⚠️ 이 버튼은 더 이상 사용할 수 없습니다",
        "not_linked": "❌ 이 채팅은 계정과 연결되어 있지 않습니다",
        "expired": "⌛ 오래된 버튼입니다. /settings 를 보내 새 메뉴를 열어 주세요",
        "retry_expired": "⌛ 재시도 버튼은 7일 후 만료됩니다. 대시보드에서 다시 시도해 주세요",
        "admins_only": "🔒 이 그룹의 알림은 그룹 관리자만 바꿀 수 있습니다",
        "permission_unknown": "⚠️ 관리자 권한을 확인하지 못했습니다. 잠시 후 다시 시도해 주세요",
    },
    "en": {
        "saved": "✅ Settings saved",
        "muted": "🔕 {name} notifications muted",
        "unmuted": "🔔 {name} notifications on",
        "retry_requested": "🔄 Retry requested",
        "retry_unknown": "⚠️ This post cannot be retried",
        "retry_not_sent": "⚠️ The retry could not be requested. Please press again shortly",
        "invalid": "⚠️ This button is no longer valid",
        "not_linked": "❌ This chat is not linked to an account",
        "expired": "⌛ This button has expired. Send /settings for a fresh menu",
        "retry_expired": (
            "⌛ Retry buttons expire after 7 days. Please retry this post from the dashboard"
        ),
        "admins_only": "🔒 Only the group's administrators can change its notifications",
        "permission_unknown": (
            "⚠️ Administrator rights could not be checked. Please try again shortly"
        ),
    },
}


def answer(key: str, language: str, event_type: str | None = None) -> str:
    """A short answer to a button press (a toast, at most 200 characters)."""
    text = _ANSWERS[_lang(language)][key]
    if event_type is not None:
        text = text.format(name=type_name(event_type, language))
    return text


def retry_limited(retry_after: float, language: str) -> str:
    """The answer to a Retry press over the limit: when to press again."""
    seconds = max(1, math.ceil(retry_after))
    minutes = math.ceil(seconds / 60)
    if _lang(language) == "en":
        wait = f"{seconds} s" if seconds < 60 else f"{minutes} min"
        return f"⏳ Too many retries of this post or account. Please press again in {wait}"
    wait = f"{seconds}초" if seconds < 60 else f"{minutes}분"
    return f"⏳ 재시도 요청이 너무 많습니다. {wait} 후에 다시 눌러 주세요"


def retry_requested(platform: str, language: str) -> str:
    """The chat's reply to a Retry press (the platform named as the notification names it)."""
    platform = platform_name(platform)[:50]
    if _lang(language) == "en":
        return f"🔄 Retry of the {platform} post requested. A notification will tell the result."
    return f"🔄 {platform} 게시 재시도를 요청했습니다. 결과는 알림으로 알려 드립니다."


def muted_reply(event_type: str, language: str) -> str:
    """The answer to `/mute TYPE`."""
    name = type_name(event_type, language)
    if _lang(language) == "en":
        return f"🔕 {name} notifications are muted. To turn them back on: /unmute {event_type}"
    return f"🔕 {name} 알림을 껐습니다. 다시 켜려면 /unmute {event_type} 을 보내세요."


def unmuted_reply(event_type: str, language: str) -> str:
    """The answer to `/unmute TYPE`."""
    name = type_name(event_type, language)
    if _lang(language) == "en":
        return f"🔔 {name} notifications are on again."
    return f"🔔 {name} 알림을 다시 켰습니다."


def mute_usage(command: str, language: str) -> str:
    """The answer to `/mute` or `/unmute` with a type that does not exist."""
    types = "\n".join(
        f"• {event_type} ({type_name(event_type, language)})" for event_type in MUTABLE_TYPES
    )
    if _lang(language) == "en":
        return f"Usage: /{command} <type>\n\nTypes:\n{types}\n\nAll settings: /settings"
    return f"사용법: /{command} <알림 종류>\n\n알림 종류:\n{types}\n\n전체 설정: /settings"
