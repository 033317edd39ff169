"""The Bot API over HTTP: `/bot<token>/<method>`, what aiogram talks to.

Reads the parameters (query string, JSON, urlencoded or multipart body), counts the request,
applies a queued fault or runs the method of `methods.METHODS`, and answers as Telegram does.
Nothing here logs a token.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from aiohttp import web

from services.standin import faults
from services.standin.limits import LIMITED_METHOD
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
        if method == LIMITED_METHOD and state.limiter.penalized and state.track_early_retries:
            state.limiter.check_early(token)
        fault = state.take_fault(method, params.get("chat_id")) if state.faults else None
        try:
            if fault is None:
                status, body = await state.call(token, method, params)
            else:
                status, body = await faults.answer(
                    state, fault, token, method, params, lambda: _close(request)
                )
        except faults.Dropped:
            return web.Response(status=500)  # never reaches the client: connection is gone
        except faults.RawAnswer as raw:
            return web.Response(text=raw.text, status=raw.status, content_type="text/html")
        except Exception:
            log.exception("stand-in failed on %s", method)  # the token is never logged
            body = ApiError(500, "Internal Server Error").body()
            status = 500
        return json_response(body, status)


def _close(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()
