"""HTTP client for the stand-in's control API, for when it runs as a separate process."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Unpack

import aiohttp

from services.standin.model import UserMessage


class StandInError(RuntimeError):
    """The control API answered with an error."""


class StandInClient:
    """Async client for `/_standin/...`: `async with StandInClient(base_url) as c: ...`."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> StandInClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the underlying HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = body
        if params:
            kwargs["params"] = {k: str(v) for k, v in params.items() if v is not None}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout + 30.0)
        async with self._session.request(method, self.base_url + path, **kwargs) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise StandInError(f"{method} {path}: {resp.status} {data}")
            return data

    async def info(self) -> dict[str, Any]:
        """Bot username, limits and settings of the stand-in."""
        return await self._request("GET", "/_standin/info")

    async def chats(self, limit: int = 200) -> list[dict[str, Any]]:
        """Known chats, most recently active first."""
        data = await self._request("GET", "/_standin/chats", params={"limit": limit})
        return data["chats"]

    async def messages(
        self, chat_id: int, direction: str = "any", limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Messages of a chat, oldest first ("any", "bot" or "user")."""
        params = {"direction": direction, "limit": limit}
        data = await self._request("GET", f"/_standin/chats/{chat_id}/messages", params=params)
        return data["messages"]

    async def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """Messages the bot sent to this chat, oldest first."""
        return await self.messages(chat_id, "bot")

    async def wait_for_messages(
        self,
        chat_id: int,
        n: int,
        timeout: float = 10.0,  # noqa: ASYNC109
        direction: str = "bot",
    ) -> list[dict[str, Any]]:
        """Wait (server-side) until the chat has `n` messages; TimeoutError if it does not."""
        params = {"direction": direction, "min": n, "timeout": timeout}
        data = await self._request(
            "GET", f"/_standin/chats/{chat_id}/messages", params=params, timeout=timeout
        )
        messages: list[dict[str, Any]] = data["messages"]
        if len(messages) < n:
            raise TimeoutError(f"chat {chat_id} has {len(messages)} messages, wanted {n}")
        return messages

    async def sent(
        self,
        since: int = 0,
        limit: int = 10000,
        timeout: float = 0.0,  # noqa: ASYNC109
    ) -> tuple[int, list[dict[str, Any]]]:
        """Bot messages from sequence `since`, waiting up to `timeout` for one: (next, msgs)."""
        params = {"since": since, "limit": limit, "timeout": timeout}
        data = await self._request("GET", "/_standin/sent", params=params, timeout=timeout)
        return data["next"], data["messages"]

    async def wait_for_sent(self, count: int, since: int = 0, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        """Wait until `count` bot messages arrived after `since`; returns the next sequence."""
        deadline = time.monotonic() + timeout
        seen, cursor = 0, since
        while seen < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{seen} of {count} messages within {timeout} s")
            cursor_after, items = await self.sent(cursor, timeout=min(remaining, 10.0))
            seen += len(items)
            cursor = cursor_after
        return cursor

    async def user_sends(
        self, chat_id: int, text: str, **how: Unpack[UserMessage]
    ) -> dict[str, Any]:
        """Act as the user writing `text` in the chat (`user`, `chat_type`, `title`; on behalf
        of `sender_chat`, in topic `message_thread_id`, if given); returns the queued update."""
        body: dict[str, Any] = {"text": text}
        for name, value in how.items():
            if value is not None:
                body[name] = dict(value) if isinstance(value, Mapping) else value
        return await self._request("POST", f"/_standin/chats/{chat_id}/send", body)

    async def press(
        self, chat_id: int, message_id: int, data: str, user: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Act as the user pressing an inline button; returns the queued update."""
        body: dict[str, Any] = {"message_id": message_id, "callback_data": data}
        if user is not None:
            body["user"] = dict(user)
        return await self._request("POST", f"/_standin/chats/{chat_id}/press", body)

    async def callback(self, query_id: str, timeout: float = 0.0) -> dict[str, Any]:  # noqa: ASYNC109
        """A press record; with `timeout` waits until the bot has answered it."""
        return await self._request(
            "GET", f"/_standin/callbacks/{query_id}", params={"timeout": timeout}, timeout=timeout
        )

    async def set_chat_state(
        self, chat_id: int, state: str, migrate_to: int | None = None
    ) -> dict[str, Any]:
        """Make a chat blocked / deactivated / not_found / migrated (migrate_to) / ok."""
        body: dict[str, Any] = {"state": state}
        if migrate_to is not None:
            body["migrate_to"] = migrate_to
        return await self._request("POST", f"/_standin/chats/{chat_id}/state", body)

    async def set_topic(self, chat_id: int, thread: int, state: str) -> dict[str, Any]:
        """Make a forum topic of the chat `open`, `closed` or `deleted`; returns the chat."""
        return await self._request(
            "POST", f"/_standin/chats/{chat_id}/topics/{thread}", {"state": state}
        )

    async def migrate(self, chat_id: int, to: int | None = None) -> list[dict[str, Any]]:
        """Turn the group into a supergroup; returns the two service-message updates."""
        body = {"to": to} if to is not None else {}
        data = await self._request("POST", f"/_standin/chats/{chat_id}/migrate", body)
        return data["updates"]

    async def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """Give a user a status in a chat, as getChatMember will answer it."""
        await self._request(
            "POST", f"/_standin/chats/{chat_id}/members/{user_id}", {"status": status}
        )

    async def members(self, chat_id: int) -> dict[str, str]:
        """The statuses set in a chat (user id -> status)."""
        data = await self._request("GET", f"/_standin/chats/{chat_id}/members")
        return dict(data["members"])

    async def add_fault(self, fault: Mapping[str, Any] | None = None, **kw: Any) -> list[Any]:
        """Queue a fault, e.g. `add_fault(error_code=502, count=3)`; returns the queue."""
        data = await self._request("POST", "/_standin/faults", {**(fault or {}), **kw})
        return data["faults"]

    async def clear_faults(self) -> None:
        """Drop all queued faults."""
        await self._request("DELETE", "/_standin/faults")

    async def set_limits(
        self,
        global_per_sec: int | None = None,
        per_chat_per_sec: int | None = None,
        per_group_per_min: int | None = None,
        slack: float | None = None,
        edits_per_group_per_min: int | None = None,
        one_way_delay: float | None = None,
    ) -> dict[str, Any]:
        """Set rate limits (None = off for that limit) and the one-way delay (seconds)."""
        body = {
            "global_per_sec": global_per_sec,
            "per_chat_per_sec": per_chat_per_sec,
            "per_group_per_min": per_group_per_min,
            "slack": slack,
            "edits_per_group_per_min": edits_per_group_per_min,
            "one_way_delay": one_way_delay,
        }
        return await self._request("POST", "/_standin/limits", body)

    async def stats(self) -> dict[str, Any]:
        """Counters: requests per method, accepted sends, 429s, early retries, faults..."""
        return await self._request("GET", "/_standin/stats")

    async def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by getUpdates or delivered to the webhook."""
        data = await self._request("GET", "/_standin/updates")
        return data["updates"]

    async def reset(self) -> None:
        """Forget everything (limits go back to the stand-in's start-up settings)."""
        await self._request("POST", "/_standin/reset")
