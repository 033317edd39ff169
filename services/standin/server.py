"""Local stand-in for the Telegram Bot API: tests, benchmarks and development, never production.

One aiohttp application serves three things:
- the Bot API wire format at ``/bot<token>/<method>`` (what aiogram talks to; `botapi.py`),
- a JSON control API under ``/_standin/`` (act as a user, inject faults, inspect; `control.py`),
- a small web page at ``/`` to read chats and type as a user (`control.py`, `static/`).

This module runs it: `StandIn` in-process (with the conveniences tests use), `serve()` for the
command line. Nothing here logs a token or a request line (the access log is off).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, Unpack

from aiohttp import web

from services.standin import users
from services.standin.botapi import BotApi
from services.standin.control import Control
from services.standin.faults import Fault
from services.standin.limits import Limits
from services.standin.model import CallbackRecord, UserMessage, count_of, messages_of
from services.standin.state import Settings, StandInState
from services.standin.wire import ApiError

__all__ = ["ApiError", "CallbackRecord", "Fault", "Limits", "StandIn", "StandInState", "serve"]


def build_app(state: StandInState) -> web.Application:
    """The aiohttp application with the Bot API, the control API and the page."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    BotApi(state).add_routes(app.router)
    Control(state).add_routes(app.router)
    return app


class StandIn:
    """The stand-in running in-process: `async with StandIn() as s:` then use `s.base_url`."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, **settings: Unpack[Settings]
    ) -> None:
        """`settings` are StandInState's: bot_username, limits, strict_html_entities..."""
        self.host = host
        self.port = port
        self.state = StandInState(**settings)
        self._runner: web.AppRunner | None = None

    async def start(self) -> StandIn:
        """Bind and start serving; the real port is then in `self.port`."""
        app = build_app(self.state)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.state.closing = False
        return self

    async def stop(self) -> None:
        """Stop serving: long polls return, the webhook pusher ends."""
        await self.state.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> StandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """Base URL for `TelegramAPIServer.from_base(...)` and for the control API."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # ---------------------------------------------------------- convenience
    def messages(self, chat_id: int, direction: str = "any") -> list[dict[str, Any]]:
        """Messages of a chat, oldest first ("any", "bot" or "user")."""
        return [m.to_view() for m in messages_of(self.state.chats.get(chat_id), direction)]

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """Messages the bot sent to this chat, oldest first."""
        return self.messages(chat_id, "bot")

    def chats(self) -> list[dict[str, Any]]:
        """All known chats with counts and last message."""
        return [c.to_view() for c in self.state.chats.values()]

    def sent(self, since: int = 0) -> list[dict[str, Any]]:
        """Bot messages in arrival order from global sequence number `since`."""
        state = self.state
        return [m.to_view() for m in state.sent_log[max(0, since - state.sent_base) :]]

    def user_sends(self, chat_id: int, text: str, **how: Unpack[UserMessage]) -> dict[str, Any]:
        """Act as the user writing `text` in the chat (`user`, `chat_type`, `title`; on behalf
        of `sender_chat`, if given: the group itself for an anonymous administrator); returns
        the queued update."""
        return users.write(self.state, chat_id, text, **how)

    def press(
        self, chat_id: int, message_id: int, data: str, user: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Act as the user pressing an inline button; returns the queued update."""
        return users.press(self.state, chat_id, message_id, data, user=user)

    def callback(self, query_id: str) -> CallbackRecord:
        """The record of a press: whether and how the bot answered it."""
        return self.state.callbacks[query_id]

    def set_chat_state(self, chat_id: int, state: str, migrate_to: int | None = None) -> None:
        """Make a chat blocked / deactivated / not_found / migrated (migrate_to) / ok."""
        self.state.set_chat_state(chat_id, state, migrate_to)

    def set_topic(self, chat_id: int, thread: int, state: str) -> None:
        """Make a forum topic of the chat `open`, `closed` or `deleted` (sends into it: 400)."""
        users.set_topic(self.state, chat_id, thread, state)

    def migrate(self, chat_id: int, new_chat_id: int | None = None) -> list[dict[str, Any]]:
        """The group becomes a supergroup (new id `-10…` unless given); returns the updates."""
        return users.migrate(self.state, chat_id, new_chat_id)

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """Give a user a status in a chat (creator, administrator, member, restricted, left,
        kicked), as getChatMember will answer it."""
        self.state.set_member(chat_id, user_id, status)

    def add_fault(self, fault: Fault | Mapping[str, Any] | None = None, **kw: Any) -> Fault:
        """Queue a fault, e.g. `s.add_fault(error_code=429, retry_after=3)`."""
        return self.state.add_fault({**asdict(Fault.coerce(fault or {})), **kw})

    def clear_faults(self) -> None:
        """Drop all queued faults."""
        self.state.faults.clear()

    def set_limits(
        self, limits: Limits | Mapping[str, Any] | bool | None = None, **kw: Any
    ) -> Limits:
        """Set rate limits, e.g. `s.set_limits(global_per_sec=30)`; no arguments = off."""
        if kw:
            limits = {**asdict(Limits.coerce(limits)), **kw}
        return self.state.set_limits(limits)

    def reset(self) -> None:
        """Forget everything (limits go back to the constructor's)."""
        self.state.reset()

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: requests per method, accepted sends, 429s, early retries, faults..."""
        return self.state.stats

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by getUpdates or delivered to the webhook."""
        return list(self.state.updates)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until predicate() holds, re-checked on each change; TimeoutError otherwise."""
        if not await self.state.wait_for(predicate, timeout):
            raise TimeoutError(f"condition not met within {timeout} s")

    async def wait_for_messages(
        self,
        chat_id: int,
        n: int,
        timeout: float = 10.0,  # noqa: ASYNC109
        direction: str = "bot",
    ) -> list[dict[str, Any]]:
        """Wait until the chat has at least `n` messages (bot ones by default); returns them."""
        state = self.state
        await self.wait_for(lambda: count_of(state.chats.get(chat_id), direction) >= n, timeout)
        return self.messages(chat_id, direction)

    async def wait_for_callback_answer(
        self,
        query_id: str,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> CallbackRecord:
        """Wait until the bot answered this callback query; returns the record."""
        callbacks = self.state.callbacks
        await self.wait_for(lambda: query_id in callbacks and callbacks[query_id].answered, timeout)
        return callbacks[query_id]


async def serve(
    host: str = "127.0.0.1",
    port: int = 8081,
    *,
    ready: Callable[[StandIn], None] | None = None,
    **settings: Unpack[Settings],
) -> None:
    """Run the stand-in until cancelled; `ready(standin)` is called once it listens."""
    async with StandIn(host, port, **settings) as standin:
        if ready is not None:
            ready(standin)
        await asyncio.Event().wait()
