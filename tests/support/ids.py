"""Ids no other test uses: the run shares one database and its rows are told apart by these."""

from __future__ import annotations

import itertools
import random
import uuid

_chat_ids = itertools.count(random.randint(10**9, 4 * 10**9) * 10)


def new_user(prefix: str = "user") -> str:
    """A user id no other test uses (`<prefix>-<12 hex digits>`)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_chat_id() -> int:
    """A private chat id no other test uses (a group's is its negative)."""
    return next(_chat_ids)


def new_users(count: int, prefix: str = "user") -> list[tuple[str, int]]:
    """`count` (user id, private chat id) pairs no other test uses."""
    return [(new_user(prefix), new_chat_id()) for _ in range(count)]
