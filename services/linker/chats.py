"""A chat's links: what the bot's commands and Telegram's chat events change (/stop, /start to
resume, the bot blocked or removed, a group's migration, the chat's /settings), and the
notifier's `telegram.blocked`, `telegram.chat_migrated` and `telegram.topic_closed` (events.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.common.logging import mask_chat_id
from services.linker.preferences import Preferences, PreferencesChange
from services.linker.usecase import UseCase, log
from shared.contract import EventType, is_supergroup_id
from shared.models import TelegramLink


class Chats(UseCase):
    """The use cases of one chat, whoever is linked to it (a group may have several users)."""

    async def chat_links(self, chat_id: int) -> list[TelegramLink]:
        """The links to this chat (any number of platform users may share one group)."""
        return await self.store.links_for_chat(self.cipher.lookup(chat_id))

    async def stop_chat(self, chat_id: int) -> list[str]:
        """`/stop`: unlink every user linked to this chat; returns their ids."""
        links = await self.chat_links(chat_id)
        users = await self.store.unlink_chat(self.cipher.lookup(chat_id), self.clock())
        chat_types = {link.user_id: link.chat_type for link in links}
        for user_id in users:
            log.info("telegram unlinked", extra={"user_id": user_id, "via": "bot"})
            await self._announce(EventType.TELEGRAM_UNLINKED, user_id, chat_types.get(user_id))
        return users

    async def set_chat_enabled(self, chat_id: int, enabled: bool) -> list[str]:
        """Resume (`/start`) or pause (bot blocked or removed) every link to this chat."""
        users = await self.store.set_enabled_for_chat(
            self.cipher.lookup(chat_id), enabled, self.clock()
        )
        for user_id in users:
            log.info(
                "telegram link %s", "resumed" if enabled else "paused", extra={"user_id": user_id}
            )
        return users

    async def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> list[str]:
        """A group became a supergroup: move its links to the new id."""
        if not is_supergroup_id(new_chat_id):
            log.warning("migration to a chat id that is not a supergroup's ignored")
            return []
        chat = self._stored_chat(new_chat_id, "supergroup")
        return await self.store.move_chat_by_lookup(
            self.cipher.lookup(old_chat_id), chat, self.clock()
        )

    # ------------------------------------------------------------ the chat's /settings
    async def chat_preferences(self, chat_id: int) -> Preferences | None:
        """The preferences shown in a chat: its first link's (by user id), None if not linked."""
        found = await self.chat_links(chat_id)
        return Preferences.of(found[0]) if found else None

    async def change_chat_preferences(
        self, chat_id: int, change: PreferencesChange
    ) -> Preferences | None:
        """Apply `change` to every link to this chat (the bot's settings are the chat's)."""
        changed = await self.store.change_chat_preferences(
            self.cipher.lookup(chat_id), change, self.clock()
        )
        return changed[0] if changed else None

    # ------------------------------------------------------------ the notifier's events
    async def on_blocked(self, user_id: str, occurred_at: datetime, reason: str) -> bool:
        """`telegram.blocked`: pause the user's link, unless it was made after the event."""
        changed = await self.store.disable(user_id, occurred_at, self.clock())
        log.info(
            "telegram link paused" if changed else "telegram.blocked changed nothing",
            extra={"user_id": user_id, "reason": reason},
        )
        return changed

    async def on_topic_closed(self, user_id: str, thread: int, reason: str) -> bool:
        """`telegram.topic_closed`: the link's topic is gone, its messages go to General from now
        on (unless the link was pointed at another topic since)."""

        cleared: list[int] = []

        def clear(prefs: Preferences) -> Preferences:
            if prefs.message_thread_id != thread:
                return prefs
            cleared.append(thread)
            return replace(prefs, message_thread_id=None)

        await self.store.change_preferences(user_id, clear, self.clock())
        changed = bool(cleared)
        log.info(
            "telegram topic cleared" if changed else "telegram.topic_closed changed nothing",
            extra={"user_id": user_id, "reason": reason},
        )
        return changed

    async def on_chat_migrated(self, user_id: str, occurred_at: datetime, new_chat_id: int) -> bool:
        """`telegram.chat_migrated`: store the new chat id, unless the link is newer (only a
        group's link moves, and only to a supergroup's id)."""
        if not is_supergroup_id(new_chat_id):
            log.warning("telegram.chat_migrated to a chat id that is not a supergroup's ignored")
            return False
        chat = self._stored_chat(new_chat_id, "supergroup")
        changed = await self.store.move_chat(user_id, chat, occurred_at, self.clock())
        log.info(
            "telegram chat migrated" if changed else "telegram.chat_migrated changed nothing",
            extra={"user_id": user_id, "chat": mask_chat_id(new_chat_id)},
        )
        return changed
