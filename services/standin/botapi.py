"""The Bot API over HTTP: `/bot<token>/<method>`, what aiogram talks to.

Reads the parameters (query string, JSON, urlencoded or multipart body), counts the request,
applies a queued fault or runs the method of `methods.METHODS`, and answers as Telegram does.
Nothing here logs a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from aiohttp import web

from services.standin import faults
from services.standin.limits import WATCHED_METHODS
from services.standin.state import StandInState
from services.standin.wire import ApiError, json_response

log = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,100}$")


async def read_params(request: web.Request) -> dict[str, Any]:
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


class BotApi:
    """The handler of `/bot<token>/<method>` for one StandInState."""

    def __init__(self, state: StandInState) -> None:
        self.state = state

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Route every HTTP method of `/bot{token}/{method}` here."""
        router.add_route("*", "/bot{token}/{method}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """`/bot<token>/<method>`: the Bot API itself."""
        state = self.state
        token = request.match_info["token"]
        raw_method = request.match_info["method"]
        method = state.canonical_method(raw_method)
        key = method or raw_method
        state.requests[key] = state.requests.get(key, 0) + 1
        if not _TOKEN_RE.match(token):
            return json_response(state.error_answer(token, ApiError(401, "Unauthorized"))[1], 401)
        if method is None:
            return json_response(state.error_answer(token, ApiError(404, "Not Found"))[1], 404)
        try:
            params = await read_params(request)
        except ApiError as e:
            status, body = state.error_answer(token, e)
            return json_response(body, status)
        delay = state.limits.one_way_delay
        if delay > 0:  # the request's way to Telegram: it is counted when it arrives
            await asyncio.sleep(delay)
        status, body = await self._answer(token, method, params, request)
        if delay > 0 and status:  # and the answer's way back
            await asyncio.sleep(delay)
        if status == 0:
            return web.Response(status=500)  # never reaches the client: connection is gone
        if status < 0:
            return web.Response(text=body, status=-status, content_type="text/html")
        return json_response(body, status)

    async def _answer(
        self, token: str, method: str, params: dict[str, Any], request: web.Request
    ) -> tuple[int, Any]:
        """(status, JSON body) of one call; (0, None) when the connection was dropped,
        (-status, text) for a raw non-JSON answer. A 429 penalizes the chat it answered."""
        state = self.state
        watched = method in WATCHED_METHODS
        chat = str(params.get("chat_id"))
        if watched and state.limiter.penalized and state.track_early_retries:
            state.limiter.check_early(token, chat)
        fault = state.take_fault(method, params.get("chat_id")) if state.faults else None
        try:
            if fault is None:
                status, body = await state.call(token, method, params)
            else:
                status, body = await faults.answer(
                    state, fault, token, method, params, lambda: _close(request)
                )
        except faults.Dropped:
            return 0, None
        except faults.RawAnswer as raw:
            return -raw.status, raw.text
        except Exception:
            log.exception("stand-in failed on %s", method)  # the token is never logged
            return 500, ApiError(500, "Internal Server Error").body()
        if status == 429 and watched and isinstance(body, dict):
            retry_after = (body.get("parameters") or {}).get("retry_after")
            state.limiter.penalize(token, chat, retry_after)
        return status, body


def _close(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()
