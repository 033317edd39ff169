"""Updates reach the bot: getUpdates long polls, or a webhook the stand-in POSTs them to.

What users do is queued in `state.updates` (`StandInState.push_update`). A long poll takes them
and confirms them with its next offset; with a webhook set, a pusher task delivers them one at a
time, retrying a failing receiver with backoff, and runs the method a bot may answer with.
These are the Bot API methods of updates; `methods.METHODS` lists them with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from services.standin.wire import ApiError, as_bool, as_int, as_json, dumps

if TYPE_CHECKING:
    from services.standin.state import StandInState

_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@dataclass
class Webhook:
    """The webhook set with setWebhook (the token is kept only to run replies; never shown)."""

    url: str
    secret_token: str | None
    token: str
    allowed_updates: list[str] | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


def _wanted(update: dict[str, Any], allowed: list[str] | None) -> bool:
    return not allowed or any(kind in update for kind in allowed)


def _confirm(state: StandInState, offset: int) -> None:
    updates = state.updates
    if offset < 0:
        while len(updates) > -offset:
            updates.popleft()
    else:
        while updates and updates[0]["update_id"] < offset:
            updates.popleft()


def _select(state: StandInState, limit: int) -> list[dict[str, Any]]:
    out = []
    for update in state.updates:
        if not _wanted(update, state.allowed_updates):
            continue
        out.append(update)
        if len(out) >= limit:
            break
    return out


async def get_updates(
    state: StandInState, token: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """getUpdates: confirm up to `offset`, then wait up to `timeout` for updates."""
    if state.webhook is not None:
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    offset = as_int(params.get("offset") or 0, "offset")
    limit = min(max(as_int(params.get("limit") or 100, "limit"), 1), 100)
    timeout = max(0, as_int(params.get("timeout") or 0, "timeout"))
    if params.get("allowed_updates") not in (None, ""):
        allowed = as_json(params["allowed_updates"], "allowed_updates")
        state.allowed_updates = list(allowed) if allowed else None
    _confirm(state, offset)
    state.poll_generation += 1
    generation = state.poll_generation
    deadline = time.monotonic() + timeout
    state.polls_waiting += 1
    state.notify()  # an older long poll, if any, is terminated
    try:
        while True:
            found = _select(state, limit)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0 or state.closing:
                return found
            await state.wait_change(remaining)
            if state.webhook is not None:
                raise ApiError(409, "Conflict: terminated by setWebhook request")
            if state.poll_generation != generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
    finally:
        state.polls_waiting -= 1


def set_webhook(state: StandInState, token: str, params: dict[str, Any]) -> tuple[bool, str]:
    """setWebhook: deliver updates to `url` from now on (an empty url deletes the webhook)."""
    url = str(params.get("url") or "")
    if not url:
        return delete_webhook(state, token, params)
    if not re.match(r"^https?://[^\s/]+", url):
        raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
    secret = params.get("secret_token") or None
    if secret is not None and not _SECRET_RE.match(str(secret)):
        raise ApiError(400, "Bad Request: secret token contains unallowed characters")
    allowed = as_json(params.get("allowed_updates") or "null", "allowed_updates")
    if as_bool(params.get("drop_pending_updates", False)):
        state.updates.clear()
    state.webhook = Webhook(
        url=url,
        secret_token=str(secret) if secret else None,
        token=token,
        allowed_updates=list(allowed) if allowed else None,
        max_connections=as_int(params.get("max_connections") or 40, "max_connections"),
    )
    state.allowed_updates = state.webhook.allowed_updates
    if state.webhook_task is None or state.webhook_task.done():
        state.webhook_task = asyncio.get_running_loop().create_task(_push(state))
    state.notify()
    return True, "Webhook was set"


def delete_webhook(state: StandInState, token: str, params: dict[str, Any]) -> tuple[bool, str]:
    """deleteWebhook: back to getUpdates (optionally dropping what is pending)."""
    if as_bool(params.get("drop_pending_updates", False)):
        state.updates.clear()
    if state.webhook is None:
        return True, "Webhook is already deleted"
    state.webhook = None
    state.notify()
    return True, "Webhook was deleted"


def get_webhook_info(state: StandInState, token: str, params: dict[str, Any]) -> dict[str, Any]:
    """getWebhookInfo: the webhook, what is pending, and its last delivery error."""
    hook = state.webhook
    info: dict[str, Any] = {
        "url": hook.url if hook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(state.updates),
    }
    if hook is not None:
        info["max_connections"] = hook.max_connections
        if hook.allowed_updates:
            info["allowed_updates"] = hook.allowed_updates
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
    return info


async def stop(state: StandInState) -> None:
    """End the webhook pusher, if it runs, and close its HTTP session."""
    task = state.webhook_task
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if state.webhook_http is not None:
        await state.webhook_http.close()
        state.webhook_http = None


def _pop_if_first(state: StandInState, update: dict[str, Any]) -> None:
    if state.updates and state.updates[0] is update:
        state.updates.popleft()


async def _push(state: StandInState) -> None:
    """The pusher: deliver pending updates in order while the webhook is set."""
    attempts = 0
    while not state.closing and state.webhook is not None:
        hook = state.webhook
        if not state.updates:
            await state.wait_change(None)
            continue
        update = state.updates[0]
        if not _wanted(update, hook.allowed_updates):
            state.updates.popleft()
            continue
        error = await _post(state, hook, update)
        if error is None:
            attempts = 0
            _pop_if_first(state, update)
            state.webhook_delivered += 1
            state.notify()
            continue
        attempts += 1
        state.webhook_failed_attempts += 1
        hook.last_error_date = int(time.time())
        hook.last_error_message = error
        if attempts >= state.webhook_retries:
            attempts = 0
            _pop_if_first(state, update)
            state.webhook_dropped += 1
            state.notify()
            continue
        # Server-side retry backoff, as Telegram does (not a test wait).
        await asyncio.sleep(min(0.1 * 2**attempts, 2.0))


async def _post(state: StandInState, hook: Webhook, update: dict[str, Any]) -> str | None:
    """POST one update to the webhook; None when it took it, else the error Telegram shows."""
    if state.webhook_http is None or state.webhook_http.closed:
        state.webhook_http = aiohttp.ClientSession()
    headers = {"Content-Type": "application/json"}
    if hook.secret_token:
        headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
    try:
        async with state.webhook_http.post(
            hook.url,
            data=dumps(update).encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=state.webhook_timeout),
        ) as resp:
            if resp.status >= 300:
                return f"Wrong response from the webhook: {resp.status} {resp.reason}"
            reply = await _read_reply(resp)
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return f"Connection failed: {type(e).__name__}"
    if reply:
        method = state.canonical_method(str(reply.pop("method", "")))
        if method is not None:
            await state.call(hook.token, method, reply)
    return None


async def _read_reply(resp: aiohttp.ClientResponse) -> dict[str, Any] | None:
    """A bot may answer a webhook POST with a method call (JSON or multipart form)."""
    if resp.content_type == "application/json":
        try:
            data = await resp.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) and "method" in data else None
    if resp.content_type.startswith("multipart/"):
        out: dict[str, Any] = {}
        reader = aiohttp.MultipartReader(resp.headers, resp.content)
        while True:
            part = await reader.next()
            if part is None:
                break
            if isinstance(part, aiohttp.BodyPartReader) and part.name:
                out[part.name] = await part.text()
        return out if "method" in out else None
    return None
