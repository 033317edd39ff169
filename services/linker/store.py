"""The linker's PostgreSQL access: link tokens, links and their preferences, rate-limit state.

Each method is one transaction. Chat ids arrive here already encrypted (`stored`) together with
their lookup digests; this module never sees a plain chat id.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.linker.ports import Press, Redemption, StoredChat
from services.linker.preferences import Preferences, PreferencesChange
from services.linker.ratelimit import RateDecision, gcra
from services.linker.tokens import TokenState, check_token
from shared.contract import EventType
from shared.db import session_factory, session_scope
from shared.models import (
    Activity,
    ButtonPress,
    Delivery,
    LinkToken,
    RateLimit,
    TelegramLink,
)

RATE_LIMITS = SQLModel.metadata.tables[RateLimit.__tablename__]
"""GCRA state per limited key (migration 0002). Owner: linker."""

SPENT_TOKENS_KEPT_FOR = timedelta(days=1)
"""Used, revoked and expired tokens are kept this long, so a late click gets a precise answer."""


class PostgresLinkStore:
    """The `LinkStore` port over tables `link_tokens`, `telegram_links`, `rate_limits` and
    `button_presses` (the linker's only) and the notifier's `activity` (read for Retry) and
    `deliveries` (read to name the notification whose button was pressed)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    async def issue_token(
        self, user_id: str, token_hash: str, now: datetime, expires_at: datetime
    ) -> None:
        """Store a new token for `user_id`, revoking the user's earlier unused ones."""
        async with session_scope(self._sessions) as session:
            # Serialise issuing per user, so two concurrent requests leave one valid token.
            key = func.hashtextextended("link_tokens:" + user_id, 0)
            await session.exec(select(func.pg_advisory_xact_lock(key)))
            await session.exec(
                update(LinkToken)
                .where(
                    col(LinkToken.user_id) == user_id,
                    col(LinkToken.used_at).is_(None),
                    col(LinkToken.revoked_at).is_(None),
                )
                .values(revoked_at=now)
            )
            await session.exec(
                delete(LinkToken).where(
                    col(LinkToken.user_id) == user_id,
                    col(LinkToken.expires_at) < now - SPENT_TOKENS_KEPT_FOR,
                )
            )
            session.add(
                LinkToken(
                    token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
                )
            )

    async def redeem(
        self, token_hash: str, chat: StoredChat, now: datetime, user_id: str | None = None
    ) -> Redemption:
        """Consume the token and link its user to `chat`, in one transaction; or say why not."""
        async with session_scope(self._sessions) as session:
            claimed = await _claim(session, token_hash, now, user_id)
            if claimed.problem is None and claimed.user_id is not None:
                await _link(session, claimed.user_id, chat, now)
            return claimed

    async def claim(self, token_hash: str, now: datetime, user_id: str | None = None) -> Redemption:
        """Mark the token used at `now` if it can be redeemed (by `user_id`, when given); of any
        number of concurrent claims of one token, one wins and the others see it used."""
        async with session_scope(self._sessions) as session:
            return await _claim(session, token_hash, now, user_id)

    async def release(self, token_hash: str, claimed_at: datetime) -> bool:
        """Undo the claim made at `claimed_at` (nothing was linked): the token works again."""
        async with session_scope(self._sessions) as session:
            result = await session.exec(
                update(LinkToken)
                .where(
                    col(LinkToken.token_hash) == token_hash,
                    col(LinkToken.used_at) == claimed_at,
                )
                .values(used_at=None)
            )
            return bool(result.rowcount)

    async def link(self, user_id: str, chat: StoredChat, now: datetime) -> None:
        """Link `user_id` to `chat` (enabled), replacing the user's earlier chat."""
        async with session_scope(self._sessions) as session:
            await _link(session, user_id, chat, now)

    async def get_link(self, user_id: str) -> TelegramLink | None:
        """The user's link row (linked or not), or None."""
        async with session_scope(self._sessions) as session:
            return await session.get(TelegramLink, user_id)

    async def links_for_chat(self, lookups: list[str]) -> list[TelegramLink]:
        """Every link to the chat with one of these lookup digests."""
        async with session_scope(self._sessions) as session:
            result = await session.exec(
                select(TelegramLink)
                .where(col(TelegramLink.chat_lookup).in_(lookups))
                .order_by(col(TelegramLink.user_id))
            )
            return list(result.all())

    async def unlink(self, user_id: str, now: datetime) -> bool:
        """Forget the user's chat and disable notifications; True if there was a chat."""
        return await self._update(
            col(TelegramLink.user_id) == user_id,
            col(TelegramLink.chat_id).is_not(None),
            values=_UNLINKED | {"updated_at": now},
        )

    async def unlink_chat(self, lookups: list[str], now: datetime) -> list[str]:
        """Unlink every user linked to this chat; returns their ids."""
        return await self._update_chat(lookups, values=_UNLINKED | {"updated_at": now})

    async def set_enabled_for_chat(
        self, lookups: list[str], enabled: bool, now: datetime
    ) -> list[str]:
        """Pause or resume every link to this chat that is not already so; returns the user ids."""
        return await self._update_chat(
            lookups,
            col(TelegramLink.enabled).is_not(enabled),
            values={"enabled": enabled, "updated_at": now},
        )

    async def disable(self, user_id: str, linked_before: datetime, now: datetime) -> bool:
        """Pause the user's link if it existed at `linked_before`; True if it changed."""
        return await self._update(
            col(TelegramLink.user_id) == user_id,
            col(TelegramLink.enabled).is_(True),
            col(TelegramLink.linked_at) <= linked_before,
            values={"enabled": False, "updated_at": now},
        )

    async def move_chat(
        self, user_id: str, chat: StoredChat, linked_before: datetime, now: datetime
    ) -> bool:
        """Point the user's link at a new chat id (group migration); True if it changed.

        Only a basic group migrates (to a supergroup): a private chat's or a supergroup's link
        never moves."""
        return await self._update(
            col(TelegramLink.user_id) == user_id,
            col(TelegramLink.chat_id).is_not(None),
            col(TelegramLink.chat_type) == "group",
            col(TelegramLink.linked_at) <= linked_before,
            values=_moved_to(chat, now),
        )

    async def move_chat_by_lookup(
        self, lookups: list[str], chat: StoredChat, now: datetime
    ) -> list[str]:
        """Point every link to the old chat, a basic group, at the new one; returns the user ids."""
        return await self._update_chat(
            lookups, col(TelegramLink.chat_type) == "group", values=_moved_to(chat, now)
        )

    async def _update(self, *where: ColumnElement[bool], values: dict[str, Any]) -> bool:
        """Set `values` in the links `where` holds for; True if any changed."""
        async with session_scope(self._sessions) as session:
            result = await session.exec(update(TelegramLink).where(*where).values(values))
            return bool(result.rowcount)

    async def _update_chat(
        self, lookups: list[str], *where: ColumnElement[bool], values: dict[str, Any]
    ) -> list[str]:
        """Set `values` in every link to the chat with one of these lookup digests (that `where`
        holds for); the ids of the users whose links changed, sorted."""
        async with session_scope(self._sessions) as session:
            result = await session.exec(
                update(TelegramLink)
                .where(col(TelegramLink.chat_lookup).in_(lookups), *where)
                .values(values)
                .returning(col(TelegramLink.user_id))
            )
            return sorted(result.scalars().all())

    async def change_preferences(
        self, user_id: str, change: PreferencesChange, now: datetime
    ) -> Preferences | None:
        """Apply `change` to a linked user's preferences; None when the user has no chat."""
        async with session_scope(self._sessions) as session:
            row = (
                await session.exec(
                    select(TelegramLink)
                    .where(
                        col(TelegramLink.user_id) == user_id, col(TelegramLink.chat_id).is_not(None)
                    )
                    .with_for_update()
                )
            ).one_or_none()
            return _change(session, row, change, now) if row is not None else None

    async def change_chat_preferences(
        self, lookups: list[str], change: PreferencesChange, now: datetime
    ) -> list[Preferences]:
        """Apply `change` to every link to this chat, in user id order (the lock order)."""
        async with session_scope(self._sessions) as session:
            rows = await session.exec(
                select(TelegramLink)
                .where(col(TelegramLink.chat_lookup).in_(lookups))
                .order_by(col(TelegramLink.user_id))
                .with_for_update()
            )
            return [_change(session, row, change, now) for row in rows.all()]

    async def failed_post(self, event_id: uuid.UUID, lookups: list[str]) -> Activity | None:
        """The `post_failure` activity with this id, if it is of a user linked to this chat."""
        async with session_scope(self._sessions) as session:
            result = await session.exec(
                select(Activity)
                .join(TelegramLink, col(TelegramLink.user_id) == col(Activity.user_id))
                .where(
                    col(Activity.event_id) == event_id,
                    col(Activity.type) == EventType.POST_FAILURE.value,
                    col(TelegramLink.chat_lookup).in_(lookups),
                )
            )
            return result.first()

    async def record_press(self, press: Press, lookups: list[str]) -> None:
        """Note a button press for each user linked to this chat; the notification is the
        press's `event_id`, or the delivery whose Telegram message was pressed."""
        async with session_scope(self._sessions) as session:
            users = await session.exec(
                select(TelegramLink.user_id).where(col(TelegramLink.chat_lookup).in_(lookups))
            )
            for user_id in users.all():
                event_id = press.event_id
                if event_id is None and press.message_id is not None:
                    event_id = (
                        await session.exec(
                            select(Delivery.event_id).where(
                                col(Delivery.user_id) == user_id,
                                col(Delivery.telegram_message_id) == press.message_id,
                            )
                        )
                    ).first()
                session.add(
                    ButtonPress(
                        event_id=event_id,
                        user_id=user_id,
                        action=press.action,
                        outcome=press.outcome,
                        pressed_at=press.at,
                    )
                )

    async def take_rate_slot(
        self, key: str, now: datetime, *, limit: int, period: timedelta
    ) -> RateDecision:
        """One request against the limit `key` (shared by every replica through PostgreSQL)."""
        async with session_scope(self._sessions) as session:
            await session.exec(
                insert(RATE_LIMITS).values(key=key, tat=now).on_conflict_do_nothing()
            )
            tat = (
                await session.exec(
                    select(RATE_LIMITS.c.tat).where(RATE_LIMITS.c.key == key).with_for_update()
                )
            ).one()
            decision = gcra(tat, now, limit=limit, period=period)
            if decision.allowed:
                await session.exec(
                    update(RATE_LIMITS).where(RATE_LIMITS.c.key == key).values(tat=decision.tat)
                )
            return decision


def _moved_to(chat: StoredChat, now: datetime) -> dict[str, Any]:
    """The columns of a link pointed at `chat` (a group's migration)."""
    return {
        "chat_id": chat.stored,
        "chat_lookup": chat.lookup,
        "chat_type": chat.chat_type,
        "updated_at": now,
    }


_UNLINKED = {
    "chat_id": None,
    "chat_lookup": None,
    "chat_type": None,
    "message_thread_id": None,
    "enabled": False,
    "linked_at": None,
}


def _change(
    session: AsyncSession, row: TelegramLink, change: PreferencesChange, now: datetime
) -> Preferences:
    changed = change(Preferences.of(row))
    for column, value in changed.columns().items():
        setattr(row, column, value)
    row.updated_at = now
    session.add(row)
    return changed


async def _claim(
    session: AsyncSession, token_hash: str, now: datetime, user_id: str | None
) -> Redemption:
    row = (
        await session.exec(
            select(LinkToken).where(LinkToken.token_hash == token_hash).with_for_update()
        )
    ).one_or_none()
    problem = check_token(_state(row), now, user_id)
    if problem is not None or row is None:
        return Redemption(row.user_id if row is not None else None, problem)
    row.used_at = now
    session.add(row)
    return Redemption(row.user_id, None)


async def _link(session: AsyncSession, user_id: str, chat: StoredChat, now: datetime) -> None:
    values = {
        "chat_id": chat.stored,
        "chat_lookup": chat.lookup,
        "chat_type": chat.chat_type,
        "message_thread_id": chat.thread,
        "enabled": True,
        "linked_at": now,
        "updated_at": now,
    }
    await session.exec(
        insert(TelegramLink)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(index_elements=["user_id"], set_=values)
    )


def _state(row: LinkToken | None) -> TokenState | None:
    if row is None:
        return None
    return TokenState(row.user_id, row.expires_at, row.used_at, row.revoked_at)
