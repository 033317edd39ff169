"""What the linker's use cases refuse with: one exception per reason, each with a stable `code`.

The HTTP API answers each with a status (`services.linker.api.errors`, the one place that maps
them); the bot's handlers answer the chat in words (`bot.py`, `presses.py`).
"""

from __future__ import annotations

from services.linker.tokens import TokenProblem


class LinkerError(Exception):
    """A use case refused; `code` is stable, the message says why."""

    code = "error"


class TokenRefused(LinkerError):
    """A link token cannot be redeemed."""

    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(TOKEN_MESSAGES[problem])
        self.problem = problem
        self.code = problem.value


class NotLinked(LinkerError):
    """The user has no linked chat."""

    code = "not_linked"


class NoActiveLink(NotLinked):
    """Nothing can be sent to the user now: no linked chat, or notifications are paused."""


class RateLimited(LinkerError):
    """Too many requests; retry after `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TelegramRefused(LinkerError):
    """Telegram did not accept the message."""

    code = "telegram_error"

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"Telegram refused the message: {reason}")
        self.retry_after = retry_after


class BotUnavailable(LinkerError):
    """The bot's username is unknown and Telegram could not be asked."""

    code = "telegram_unavailable"


class RetryRefused(LinkerError):
    """No failed post of a user linked to this chat has that event id."""

    code = "retry_unknown_event"


class RetryNotSent(LinkerError):
    """The retry request could not be published; the user may press again."""

    code = "retry_not_published"


TOKEN_MESSAGES = {
    TokenProblem.NOT_FOUND: "link token not found",
    TokenProblem.WRONG_USER: "link token belongs to another user",
    TokenProblem.USED: "link token has already been used",
    TokenProblem.REVOKED: "link token was replaced by a newer one",
    TokenProblem.EXPIRED: "link token has expired",
}

NOT_LINKED_MESSAGE = "Telegram account not linked. Use /link-account endpoint to connect."
"""The spec's words for a user without a link (the status endpoint says them too)."""
