"""Every text the linker sends to a Telegram chat (Korean, like the spec), in one place."""

from __future__ import annotations

from services.linker.tokens import TokenProblem

TEST_MESSAGE = "🧪 테스트 메시지\n\nTelegram 연동이 정상적으로 작동합니다! ✅"

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

STOPPED = (
    "🔕 연결이 해제되었습니다. 더 이상 알림을 보내지 않습니다.\n\n"
    "다시 연결하려면 대시보드에서 새 연결 링크를 받아 주세요."
)
STOP_NOT_LINKED = "이 채팅은 계정과 연결되어 있지 않습니다. 해제할 연결이 없습니다."

HELP = (
    "🤖 SNS 자동화 알림 봇\n\n"
    "/start - 시작하기 (연결 링크로 계정 연결)\n"
    "/status - 연결 상태 확인\n"
    "/stop - 연결 해제 및 알림 중지\n"
    "/help - 도움말\n\n"
    "계정 연결은 대시보드의 Telegram 설정에서 시작합니다."
)

COMMANDS = {
    "start": "시작하기",
    "status": "연결 상태 확인",
    "stop": "연결 해제 및 알림 중지",
    "help": "도움말",
}
"""The bot's command menu (setMyCommands)."""
