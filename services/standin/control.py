"""The test-control API under `/_standin/` (JSON) and the web page at `/`.

Act as a user, set chat states, members, limits and faults, and read chats, messages, updates
and counters. The README's "Control API" table lists the routes; `client.py` calls them.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from services.standin import users
from services.standin.faults import Fault
from services.standin.model import count_of, messages_of
from services.standin.state import StandInState
from services.standin.wire import dumps, json_response

_N = TypeVar("_N", int, float)

INDEX_HTML = Path(__file__).parent / "static" / "index.html"


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=dumps({"error": message}), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


def _query_number(request: web.Request, name: str, default: _N) -> _N:
    """A numeric query parameter (400 if it is not a number)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return type(default)(raw)
    except ValueError:
        raise _bad_request(f"{name} must be a number") from None


def _chat_id(request: web.Request) -> int:
    try:
        return int(request.match_info["chat_id"])
    except ValueError:
        raise _bad_request("chat_id must be an integer") from None


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise _bad_request("body must be JSON") from None
    if not isinstance(data, dict):
        raise _bad_request("body must be a JSON object")
    return data


async def _chat_and_body(request: web.Request) -> tuple[int, dict[str, Any]]:
    return _chat_id(request), await _body(request)


class Control:
    """The handlers of `/_standin/...` and `/` for one StandInState."""

    def __init__(self, state: StandInState) -> None:
        self.state = state

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Add the page and every control route."""
        r = router
        r.add_get("/", self.index)
        r.add_get("/_standin/info", self.info)
        r.add_get("/_standin/chats", self.chats)
        r.add_get("/_standin/chats/{chat_id}/messages", self.messages)
        r.add_post("/_standin/chats/{chat_id}/send", self.send)
        r.add_post("/_standin/chats/{chat_id}/press", self.press)
        r.add_post("/_standin/chats/{chat_id}/state", self.chat_state)
        r.add_post("/_standin/chats/{chat_id}/migrate", self.migrate)
        r.add_post("/_standin/chats/{chat_id}/topics/{thread}", self.topic)
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

    async def index(self, request: web.Request) -> web.StreamResponse:
        """`GET /`: the web page."""
        return web.FileResponse(INDEX_HTML, headers={"Cache-Control": "no-store"})

    async def info(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/info`: bot username, limits, settings."""
        state = self.state
        return json_response(
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
        return json_response({"total": len(chats), "chats": [c.to_view() for c in chats[:limit]]})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/chats/{id}/messages?direction&limit&min&timeout`."""
        chat_id = _chat_id(request)
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
        return json_response(
            {
                "chat": chat.to_view() if chat is not None else None,
                "messages": [m.to_view() for m in items],
            }
        )

    async def send(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/send`: act as the user writing a message."""
        chat_id, body = await _chat_and_body(request)
        try:
            update = users.write(
                self.state,
                chat_id,
                str(body.get("text") or ""),
                user=body.get("user"),
                chat_type=body.get("chat_type"),
                title=body.get("title"),
                sender_chat=body.get("sender_chat"),
                message_thread_id=body.get("message_thread_id"),
            )
        except (AttributeError, ValueError) as e:
            return _error(400, str(e))
        return json_response(update)

    async def press(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/press`: act as the user pressing a button."""
        chat_id, body = await _chat_and_body(request)
        try:
            data = str(body.get("callback_data") or body.get("data") or "")
            message_id = int(body["message_id"])
            update = users.press(self.state, chat_id, message_id, data, user=body.get("user"))
        except KeyError as e:
            return _error(404, str(e.args[0]) if e.args else "not found")
        except (TypeError, ValueError) as e:
            return _error(400, str(e))
        return json_response(update)

    async def chat_state(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/state`: blocked, deactivated, not_found, migrated, ok."""
        chat_id, body = await _chat_and_body(request)
        migrate_to = body.get("migrate_to")
        try:
            chat = self.state.set_chat_state(
                chat_id,
                str(body.get("state") or "ok"),
                int(migrate_to) if migrate_to is not None else None,
            )
        except ValueError as e:
            return _error(400, str(e))
        return json_response(chat.to_view())

    async def migrate(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/migrate`: the group becomes a supergroup (`to`: its id)."""
        chat_id, body = await _chat_and_body(request)
        to = body.get("to")
        try:
            updates = users.migrate(self.state, chat_id, int(to) if to is not None else None)
        except (TypeError, ValueError) as e:
            return _error(400, str(e))
        return json_response({"updates": updates})

    async def topic(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/topics/{thread}`: a forum topic is open, closed, deleted."""
        chat_id, body = await _chat_and_body(request)
        try:
            thread = int(request.match_info["thread"])
            chat = users.set_topic(self.state, chat_id, thread, str(body.get("state") or "open"))
        except ValueError as e:
            return _error(400, str(e))
        return json_response(chat.to_view())

    async def members(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/chats/{id}/members`: the statuses set in the chat."""
        statuses = self.state.members.of_chat(_chat_id(request))
        return json_response({"members": {str(user): s for user, s in statuses.items()}})

    async def set_member(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/chats/{id}/members/{user_id}` `{"status"}`: getChatMember's answer."""
        chat_id, body = await _chat_and_body(request)
        try:
            user_id = int(request.match_info["user_id"])
            self.state.set_member(chat_id, user_id, str(body.get("status") or ""))
        except ValueError as e:
            return _error(400, str(e))
        return json_response({"chat_id": chat_id, "user_id": user_id, "status": body["status"]})

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
        return json_response(
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
        return json_response(self.state.stats)

    async def pending_updates(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/updates`: updates not yet confirmed or delivered."""
        return json_response({"updates": list(self.state.updates)})

    async def callbacks(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/callbacks`: all presses and their answers."""
        return json_response({"callbacks": [asdict(c) for c in self.state.callbacks.values()]})

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
            return _error(404, "unknown callback query")
        return json_response(asdict(record))

    async def reset(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/reset`: forget everything."""
        self.state.reset()
        return json_response({"ok": True})

    async def get_limits(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/limits`."""
        return json_response(asdict(self.state.limits))

    async def set_limits(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/limits`: replace the rate limits (null = off)."""
        try:
            limits = self.state.set_limits(await _body(request))
        except (TypeError, ValueError) as e:
            return _error(400, str(e))
        return json_response(asdict(limits))

    async def get_faults(self, request: web.Request) -> web.StreamResponse:
        """`GET /_standin/faults`: the fault queue."""
        return json_response({"faults": [asdict(f) for f in self.state.faults]})

    async def add_faults(self, request: web.Request) -> web.StreamResponse:
        """`POST /_standin/faults`: append one fault or a list of them."""
        if not request.can_read_body:
            return _error(400, "body must be a fault object or a list of them")
        try:
            body = await request.json()
            items = body if isinstance(body, list) else [body]
            faults = [Fault.coerce(item) for item in items]
        except (TypeError, ValueError) as e:
            return _error(400, str(e))
        for fault in faults:
            self.state.add_fault(fault)
        return json_response({"faults": [asdict(f) for f in self.state.faults]})

    async def clear_faults(self, request: web.Request) -> web.StreamResponse:
        """`DELETE /_standin/faults`: empty the fault queue."""
        self.state.faults.clear()
        return json_response({"faults": []})
