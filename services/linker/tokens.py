"""Link tokens: generation, hashing and the redemption check (pure functions)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

TOKEN_BYTES = 32
"""256 bits of randomness; `token_urlsafe` encodes them in 43 characters."""
START_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What Telegram accepts as a deep-link `start` payload."""


def new_token() -> str:
    """A fresh random link token that fits Telegram's `start` payload rules."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_well_formed(token: str) -> bool:
    """True when `token` could be a link token (a `start` payload)."""
    return bool(START_PAYLOAD.match(token))


def linking_url(bot_username: str, token: str) -> str:
    """The deep link that opens the bot with `/start <token>`."""
    return f"https://t.me/{bot_username}?start={token}"


class TokenProblem(StrEnum):
    """Why a token cannot be redeemed."""

    NOT_FOUND = "token_not_found"
    WRONG_USER = "token_wrong_user"
    USED = "token_used"
    REVOKED = "token_revoked"
    EXPIRED = "token_expired"


@dataclass(frozen=True)
class TokenState:
    """A stored token as the check needs it."""

    user_id: str
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


def check_token(
    state: TokenState | None, now: datetime, user_id: str | None = None
) -> TokenProblem | None:
    """The reason `state` cannot be redeemed now (by `user_id`, when given), or None if it can."""
    if state is None:
        return TokenProblem.NOT_FOUND
    if user_id is not None and state.user_id != user_id:
        return TokenProblem.WRONG_USER  # before anything that would tell another user its state
    if state.used_at is not None:
        return TokenProblem.USED
    if state.revoked_at is not None:
        return TokenProblem.REVOKED
    if now >= state.expires_at:
        return TokenProblem.EXPIRED
    return None
