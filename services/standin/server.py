"""Local stand-in for the Telegram Bot API: tests, benchmarks and development, never production.

One aiohttp application serves three things:
- the Bot API wire format at ``/bot<token>/<method>`` (what aiogram talks to),
- a JSON control API under ``/_standin/`` (act as a user, inject faults, inspect),
- a small web page at ``/`` to read chats and type as a user.

All state lives in memory in one event loop, so no locks are needed. Nothing here logs a
token or a request line (the access log is off).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from services.standin.state import (
    CANONICAL_METHODS,
    DEFAULT_BOT_FIRST_NAME,
    DEFAULT_BOT_USERNAME,
    LIMITED_METHOD,
    ApiError,
    CallbackRecord,
    Fault,
    Limits,
    StandInState,
    count_of,
    dumps,
    messages_of,
)

__all__ = ["ApiError", "CallbackRecord", "Fault", "Limits", "StandIn", "StandInState", "serve"]

log = logging.getLogger(__name__)
_N = TypeVar("_N", int, float)

INDEX_HTML = Path(__file__).parent / "static" / "index.html"
_TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,100}$")


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Request parameters from the query string and a JSON, urlencoded or multipart body."""
    params: dict[str, Any] = dict(request.query) if request.query_string else {}
    if request.can_read_body:
        ctype = request.content_type
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    params[key] = value
        else:
            body = await request.read()
            if body.strip():
                try:
                    data = json.loads(body)
                except ValueError:
                    raise ApiError(400, "Bad Request: can't parse JSON request body") from None
                if not isinstance(data, dict):
                    raise ApiError(400, "Bad Request: request body must be a JSON object")
                params.update(data)
    return params


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data).encode(), status=status, content_type="application/json")


def _control_error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _query_number(request: web.Request, name: str, default: _N) -> _N:
    """A numeric query parameter of the control API (400 if it is not a number)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return type(default)(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=dumps({"error": f"{name} must be a number"}), content_type="application/json"
        ) from None


class _App:
    """HTTP glue: routes requests to a StandInState."""

    def __init__(self, state: StandInState) -> None:
        self.state = state

    def build(self) -> web.Application:
        """The aiohttp application with all routes."""
        app = web.Application(client_max_size=4 * 1024 * 1024)
        r = app.router
        r.add_route("*", "/bot{token}/{method}", self.api)
        r.add_get("/", self.index)
        r.add_get("/_standin/info", self.info)
        r.add_get("/_standin/chats", self.chats)
        r.add_get("/_standin/chats/{chat_id}/messages", self.messages)
        r.add_post("/_standin/chats/{chat_id}/send", self.send)
        r.add_post("/_standin/chats/{chat_id}/press", self.press)
        r.add_post("/_standin/chats/{chat_id}/state", self.chat_state)
        r.add_post("/_standin/chats/{chat_id}/migrate", self.migrate)
        r.add_get("/_standin/chats/{chat_id}/members", self.members)
        r.add_post("/_standin/chats/{chat_id}/members/{user_id}", self.set_member)
        r.add_get("/_standin/sent", self.sent)
        r.add_get("/_standin/stats", self.stats)
        r.add_get("/_standin/updates", self.pending_updates)
        r.add_get("/_standin/callbacks", self.callbacks)
        r.add_get("/_standin/callbacks/{query_id}", self.callback)
        r.add_post("/_standin/reset", self.reset)
        r.add_get("/_standin/limits", self.get_limits)
        r.add_post("/_standin/limits", self.set_limits)
        r.add_get("/_standin/faults", self.get_faults)
        r.add_post("/_standin/faults", self.add_faults)
        r.add_delete("/_standin/faults", self.clear_faults)
        return app

    # ------------------------------------------------------------- Bot API
    async def api(self, request: web.Request) -> web.StreamResponse:
        """`/bot<token>/<method>`: the Bot API itself."""
        state = self.state
        token = request.match_info["token"]
        raw_method = request.match_info["method"]
        method = CANONICAL_METHODS.get(raw_method.lower())
        key = method or raw_method
        state.requests[key] = state.requests.get(key, 0) + 1
        if not _TOKEN_RE.match(token):
            return _json(state.error_answer(token, ApiError(401, "Unauthorized"))[1], 401)
        if method is None:
            return _json(state.error_answer(token, ApiError(404, "Not Found"))[1], 404)
        try:
            params = await _read_params(request)
        except ApiError as e:
            status, body = state.error_answer(token, e)
            return _json(body, status)
        if method == LIMITED_METHOD and state._penalty and state.track_early_retries:
            state.check_early(token)
        fault = state.take_fault(method, params.get("chat_id")) if state.faults else None
        try:
            if fault is None:
                status, body = await state.call(token, method, params)
            else:
                status, body = await self._faulty(request, token, method, params, fault)
        except _Dropped:
            return web.Response(status=500)  # never reaches the client: connection is gone
        except _RawAnswer as raw:
            return web.Response(text=raw.text, status=raw.status, content_type="text/html")
        except Exception:
            log.exception("stand-in failed on %s", method)  # the token is never logged
            body = ApiError(500, "Internal Server Error").body()
            status = 500
        return _json(body, status)

    async def _faulty(
        self,
        request: web.Request,
        token: str,
        method: str,
        params: dict[str, Any],
        fault: Fault,
    ) -> tuple[int, Any]:
        state = self.state
        if fault.result is not None:  # an odd success: ok, with a result of another shape
            if fault.deliver:
                await state.call(token, method, params)
            return 200, {"ok": True, "result": fault.result}
        if fault.raw_body is not None:  # what a proxy in front of the Bot API may answer
            raise _RawAnswer(fault.error_code or 502, fault.raw_body)
        if fault.close_connection:
            if fault.deliver:
                await state.call(token, method, params)
            if fault.delay:
                await state.wait_for(lambda: state.closing, fault.delay)
            if request.transport is not None:
                request.transport.close()
            raise _Dropped
        if fault.delay:
            if fault.deliver:
                status, body = await state.call(token, method, params)
                await state.wait_for(lambda: state.closing, fault.delay)
                if fault.error_code is None:
                    return status, body
            else:
                await state.wait_for(lambda: state.closing, fault.delay)
        return state.error_answer(token, fault.error())

    # -------------------------------------------------------------- page
    async def index(self, request: web.Request) -> web.StreamResponse:
        """`GET /`: the web page."""
        return web.FileResponse(INDEX_HTML, headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------- control API
    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            data = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(
                text='{"error":"body must be JSON"}', content_type="application/json"
            ) from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(
                text='{"error":"body must be a JSON object"}', content_type="application/json"
            )
        return data

    @staticmethod
    def _chat_id(request: web.Request) -> int:
        try:
            return int(request.match_info["chat_id"])
        except ValueError:
            raise web.HTTPBadRequest(
                text='{"error":"chat_id must be an integer"}', content_type="application/json"
            ) from None

    async def info(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/info`: bot username, limits, settings."""
        state = self.state
        return _json(
            {
                "bot_username": state.bot_username,
                "bot_first_name": state.bot_first_name,
                "limits": asdict(state.limits),
                "strict_html_entities": state.strict_html_entities,
            }
        )

    async def chats(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/chats?limit=N`: chats, most recently active first."""
        limit = _query_number(request, "limit", 200)
        chats = sorted(
            self.state.chats.values(),
            key=lambda c: c.last.sent_at if c.last is not None else 0.0,
            reverse=True,
        )
        return _json({"total": len(chats), "chats": [c.to_view() for c in chats[:limit]]})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/chats/{id}/messages?direction&limit&min&timeout`."""
        chat_id = self._chat_id(request)
        q = request.query
        direction = q.get("direction", "any")
        minimum = _query_number(request, "min", 0)
        timeout = _query_number(request, "timeout", 0.0)
        if minimum and timeout > 0:
            await self.state.wait_for(
                lambda: count_of(self.state.chats.get(chat_id), direction) >= minimum, timeout
            )
        chat = self.state.chats.get(chat_id)
        items = messages_of(chat, direction)
        if "limit" in q:
            limit = _query_number(request, "limit", 0)
            items = items[-limit:] if limit > 0 else []
        return _json(
            {
                "chat": chat.to_view() if chat is not None else None,
                "messages": [m.to_view() for m in items],
            }
        )

    async def send(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/send`: act as the user writing a message."""
        chat_id = self._chat_id(request)
        body = await self._body(request)
        try:
            update = self.state.user_send(
                chat_id,
                str(body.get("text") or ""),
                user=body.get("user"),
                chat_type=body.get("chat_type"),
                title=body.get("title"),
                sender_chat=body.get("sender_chat"),
            )
        except (AttributeError, ValueError) as e:
            return _control_error(400, str(e))
        return _json(update)

    async def press(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/press`: act as the user pressing a button."""
        chat_id = self._chat_id(request)
        body = await self._body(request)
        try:
            update = self.state.press(
                chat_id,
                int(body["message_id"]),
                str(body.get("callback_data") or body.get("data") or ""),
                user=body.get("user"),
            )
        except KeyError as e:
            return _control_error(404, str(e.args[0]) if e.args else "not found")
        except (TypeError, ValueError) as e:
            return _control_error(400, str(e))
        return _json(update)

    async def chat_state(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/state`: blocked, deactivated, not_found, migrated, ok."""
        chat_id = self._chat_id(request)
        body = await self._body(request)
        migrate_to = body.get("migrate_to")
        try:
            chat = self.state.set_chat_state(
                chat_id,
                str(body.get("state") or "ok"),
                int(migrate_to) if migrate_to is not None else None,
            )
        except ValueError as e:
            return _control_error(400, str(e))
        return _json(chat.to_view())

    async def migrate(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/migrate`: the group becomes a supergroup (`to`: its id)."""
        chat_id = self._chat_id(request)
        body = await self._body(request)
        to = body.get("to")
        try:
            updates = self.state.migrate(chat_id, int(to) if to is not None else None)
        except (TypeError, ValueError) as e:
            return _control_error(400, str(e))
        return _json({"updates": updates})

    async def members(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/chats/{id}/members`: the statuses set in the chat."""
        chat_id = self._chat_id(request)
        statuses = self.state.members.of_chat(chat_id)
        return _json({"members": {str(user): status for user, status in statuses.items()}})

    async def set_member(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/members/{user_id}` `{"status"}`: getChatMember's answer."""
        chat_id = self._chat_id(request)
        body = await self._body(request)
        try:
            user_id = int(request.match_info["user_id"])
            self.state.set_member(chat_id, user_id, str(body.get("status") or ""))
        except ValueError as e:
            return _control_error(400, str(e))
        return _json({"chat_id": chat_id, "user_id": user_id, "status": body["status"]})

    async def sent(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/sent?since=N&limit&timeout`: bot messages in arrival order."""
        state = self.state
        since = _query_number(request, "since", 0)
        limit = _query_number(request, "limit", 10000)
        timeout = _query_number(request, "timeout", 0.0)
        if timeout > 0:
            await state.wait_for(lambda: state.sent_base + len(state.sent_log) > since, timeout)
        start = max(0, since - state.sent_base)
        items = state.sent_log[start : start + limit]
        return _json(
            {
                "next": state.sent_base + start + len(items),
                "messages": [
                    {
                        "seq": m.seq,
                        "chat_id": m.chat.id,
                        "message_id": m.message_id,
                        "text": m.text,
                        "parse_mode": m.parse_mode,
                        "sent_at": m.sent_at,
                        "deleted": m.deleted,
                    }
                    for m in items
                ],
            }
        )

    async def stats(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/stats`: counters."""
        return _json(self.state.stats)

    async def pending_updates(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/updates`: updates not yet confirmed or delivered."""
        return _json({"updates": list(self.state.updates)})

    async def callbacks(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/callbacks`: all presses and their answers."""
        return _json({"callbacks": [asdict(c) for c in self.state.callbacks.values()]})

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/callbacks/{id}?timeout=S`: one press, optionally awaiting its answer."""
        query_id = request.match_info["query_id"]
        state = self.state
        timeout = _query_number(request, "timeout", 0.0)
        if timeout > 0:
            await state.wait_for(
                lambda: query_id in state.callbacks and state.callbacks[query_id].answered,
                timeout,
            )
        record = state.callbacks.get(query_id)
        if record is None:
            return _control_error(404, "unknown callback query")
        return _json(asdict(record))

    async def reset(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/reset`: forget everything."""
        self.state.reset()
        return _json({"ok": True})

    async def get_limits(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/limits`."""
        return _json(asdict(self.state.limits))

    async def set_limits(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/limits`: replace the rate limits (null = off)."""
        try:
            limits = self.state.set_limits(await self._body(request))
        except (TypeError, ValueError) as e:
            return _control_error(400, str(e))
        return _json(asdict(limits))

    async def get_faults(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/faults`: the fault queue."""
        return _json({"faults": [asdict(f) for f in self.state.faults]})

    async def add_faults(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/faults`: append one fault or a list of them."""
        if not request.can_read_body:
            return _control_error(400, "body must be a fault object or a list of them")
        try:
            body = await request.json()
            items = body if isinstance(body, list) else [body]
            faults = [Fault.coerce(item) for item in items]
        except (TypeError, ValueError) as e:
            return _control_error(400, str(e))
        for fault in faults:
            self.state.add_fault(fault)
        return _json({"faults": [asdict(f) for f in self.state.faults]})

    async def clear_faults(self, request: web.Request) -> web.StreamResponse:
        """`DELETE /_standin/faults`: empty the fault queue."""
        self.state.faults.clear()
        return _json({"faults": []})


class _Dropped(Exception):
    """The connection was closed on purpose by a fault."""


class _RawAnswer(Exception):
    """A fault answers with a body that is not JSON."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status)
        self.status = status
        self.text = text


class StandIn:
    """The stand-in running in-process: `async with StandIn() as s:` then use `s.base_url`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_username: str = DEFAULT_BOT_USERNAME,
        bot_first_name: str = DEFAULT_BOT_FIRST_NAME,
        limits: Limits | Mapping[str, Any] | bool | None = None,
        track_early_retries: bool = True,
        early_retry_grace: float = 0.1,
        strict_html_entities: bool = True,
        webhook_retries: int = 5,
        webhook_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.state = StandInState(
            bot_username=bot_username,
            bot_first_name=bot_first_name,
            limits=limits,
            track_early_retries=track_early_retries,
            early_retry_grace=early_retry_grace,
            strict_html_entities=strict_html_entities,
            webhook_retries=webhook_retries,
            webhook_timeout=webhook_timeout,
        )
        self._runner: web.AppRunner | None = None

    async def start(self) -> StandIn:
        """Bind and start serving; the real port is then in `self.port`."""
        app = _App(self.state).build()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.state.closing = False
        return self

    async def stop(self) -> None:
        """Stop serving: long polls return, the webhook pusher ends."""
        state = self.state
        state.closing = True
        state.notify()
        task = state._webhook_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if state._http is not None:
            await state._http.close()
            state._http = None
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

    def user_sends(
        self,
        chat_id: int,
        text: str,
        user: Mapping[str, Any] | None = None,
        chat_type: str | None = None,
        title: str | None = None,
        sender_chat: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Act as the user writing `text` in the chat (on behalf of `sender_chat`, if given:
        the group itself for an anonymous administrator); returns the queued update."""
        return self.state.user_send(
            chat_id, text, user=user, chat_type=chat_type, title=title, sender_chat=sender_chat
        )

    def press(
        self, chat_id: int, message_id: int, data: str, user: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Act as the user pressing an inline button; returns the queued update."""
        return self.state.press(chat_id, message_id, data, user=user)

    def callback(self, query_id: str) -> CallbackRecord:
        """The record of a press: whether and how the bot answered it."""
        return self.state.callbacks[query_id]

    def set_chat_state(self, chat_id: int, state: str, migrate_to: int | None = None) -> None:
        """Make a chat blocked / deactivated / not_found / migrated (migrate_to) / ok."""
        self.state.set_chat_state(chat_id, state, migrate_to)

    def migrate(self, chat_id: int, new_chat_id: int | None = None) -> list[dict[str, Any]]:
        """The group becomes a supergroup (new id `-10…` unless given); returns the updates."""
        return self.state.migrate(chat_id, new_chat_id)

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
    **kwargs: Any,
) -> None:
    """Run the stand-in until cancelled; `ready(standin)` is called once it listens."""
    async with StandIn(host, port, **kwargs) as standin:
        if ready is not None:
            ready(standin)
        await asyncio.Event().wait()
