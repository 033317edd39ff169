"""Who is what in each chat, for `getChatMember` (the Bot API's ChatMember objects).

A test (or the web page's user) sets a user's status in a chat; unset, the chat's default user
(the one the control API speaks as when it names no user) owns a group, supergroup or channel,
and everyone else is a plain member. In a private chat the user is a member of it.
"""

from __future__ import annotations

from typing import Any

STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")
"""The `status` values of the Bot API's ChatMember kinds."""

_ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_send_welcome_messages",
    "can_pin_messages",
    "can_manage_topics",
)
_MEMBER_RIGHTS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_react_to_messages",
    "can_edit_tag",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
)


def chat_member(status: str, user: dict[str, Any]) -> dict[str, Any]:
    """The ChatMember object (Bot API 10) of `user` with `status`."""
    if status == "creator":
        return {"status": status, "user": user, "is_anonymous": False}
    if status == "administrator":
        rights = dict.fromkeys(_ADMIN_RIGHTS, True)
        return {
            "status": status,
            "user": user,
            "can_be_edited": False,
            "is_anonymous": False,
            "can_promote_members": False,
            **rights,
        }
    if status == "restricted":
        rights = dict.fromkeys(_MEMBER_RIGHTS, False)
        return {"status": status, "user": user, "is_member": True, "until_date": 0, **rights}
    if status == "kicked":
        return {"status": status, "user": user, "until_date": 0}
    return {"status": status, "user": user}


class Members:
    """Statuses set by tests, per chat and user."""

    def __init__(self) -> None:
        self._statuses: dict[tuple[int, int], str] = {}

    def set(self, chat_id: int, user_id: int, status: str) -> None:
        """Give `user_id` this status in `chat_id`."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        self._statuses[(chat_id, user_id)] = status

    def status(self, chat_id: int, chat_type: str, user_id: int, default_user_id: int) -> str:
        """The status of `user_id` in the chat: as set, else by the rules of the module."""
        given = self._statuses.get((chat_id, user_id))
        if given is not None:
            return given
        if chat_type != "private" and user_id == default_user_id:
            return "creator"
        return "member"

    def of_chat(self, chat_id: int) -> dict[int, str]:
        """The statuses set in one chat (user id -> status)."""
        return {user: status for (chat, user), status in self._statuses.items() if chat == chat_id}
