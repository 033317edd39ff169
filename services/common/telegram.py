"""Building the aiogram Bot every service uses, pointed at TELEGRAM_API_BASE, with a session that
is liberal in what it reads from the Bot API server.

aiogram reads every answer into its models and raises `ClientDecodeError` (not a
`TelegramAPIError`, so nobody expects it) when the shape differs in any detail: a proxy's HTML
error page, a self-hosted or older Bot API server without a field added since, `true` or `{}`
where a Message was expected. `LenientSession` instead:

- takes an `ok: true` answer as the success it is: an action whose result nobody reads
  (sendMessage, answerCallbackQuery, setWebhook, ...) returns None (True where the method returns
  True), so the caller carries on; a query (`get...`) raises `UnexpectedResult`, a
  `TelegramAPIError` that keeps the raw `result` so a caller can still read the one field it needs
  (`result_field`); getMe falls back to what the token says (aiogram's polling needs a User), and
  getUpdates reads each update on its own (`read_update`), so one it cannot read never stalls
  polling;
- turns an error answer it cannot read into the `TelegramAPIError` its HTTP status means (a
  proxy's 502 page is a `TelegramServerError`);
- never lets the bot token reach an error message (a misconfigured base URL puts it in aiohttp's
  errors), and caps descriptions at `MAX_DESCRIPTION` characters without control characters.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, cast, get_args

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.methods import Response, TelegramMethod
from aiogram.types import Update, User
from aiogram.types.update import UpdateTypeLookupError
from opentelemetry.trace import SpanKind

from services.common import tracing
from shared.settings import BaseServiceSettings, ConfigurationError

if TYPE_CHECKING:
    from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)

DEV_BOT_TOKEN = "1:local-stand-in"  # noqa: S105 (not a secret: the stand-in accepts any token)
"""The token used against the local stand-in when TELEGRAM_BOT_TOKEN is unset in development."""
MAX_DESCRIPTION = 300
"""Telegram's descriptions are short; anything longer is cut (it reaches logs and API errors)."""
_HIDDEN = "<bot token>"


class UnexpectedResult(TelegramAPIError):
    """Telegram answered `ok: true`, but the result of a query has a shape aiogram cannot read.

    `result` is the raw JSON result, for a caller that needs only one field of it."""

    label = "Unexpected answer"

    def __init__(self, method: TelegramMethod[Any], message: str, result: Any) -> None:
        super().__init__(method=method, message=message)
        self.result = result


def result_field(result: Any, name: str) -> str | None:
    """The text field `name` of a raw result object, or None when there is none."""
    value = result.get(name) if isinstance(result, dict) else None
    return value if isinstance(value, str) else None


def safe_description(message: object, token: str) -> str:
    """An error description fit for logs and API errors: no token, no controls, capped."""
    text = message if isinstance(message, str) and message else "no description"
    secret = token.partition(":")[2]
    for hidden in (token, secret):
        if len(hidden) >= 8:
            text = text.replace(hidden, _HIDDEN)
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def read_update(raw: Any, bot: Bot) -> Update | None:
    """An Update from what Telegram sent; None when it has no update id.

    What aiogram cannot read is reduced to what can still be acted on: a callback query keeps its
    id, sender (when readable) and data but loses its message, so the handler can answer it
    (refusing it: without the message nothing says which chat it is for); anything else becomes an
    update with only its id, which the dispatcher skips (and polling confirms)."""
    if not isinstance(raw, dict):
        return None
    update_id = raw.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return None
    context = {"bot": bot}
    try:
        return Update.model_validate(raw, context=context)
    except (ValueError, RecursionError):
        pass
    log.warning("update %s is not a Telegram update aiogram can read; reduced", update_id)
    query = raw.get("callback_query")
    if isinstance(query, dict) and isinstance(query.get("id"), str):
        try:
            sender = User.model_validate(query.get("from"), context=context).model_dump()
        except (ValueError, RecursionError):
            sender = {"id": 0, "is_bot": False, "first_name": ""}
        data = query.get("data")
        reduced = {"id": query["id"], "from": sender, "chat_instance": ""}
        if isinstance(data, str):
            reduced["data"] = data
        try:
            return Update.model_validate(
                {"update_id": update_id, "callback_query": reduced}, context=context
            )
        except ValueError:  # an id or data pydantic will not take as text
            pass
    return Update(update_id=update_id)


def has_event(update: Update) -> bool:
    """Whether the update carries an event aiogram knows (a reduced one may carry none)."""
    try:
        return bool(update.event_type)
    except UpdateTypeLookupError:
        return False


class LenientSession(AiohttpSession):
    """aiogram's aiohttp session, liberal in what it reads (see the module docstring).

    `bot_username` (TELEGRAM_BOT_USERNAME) completes a getMe answer that names no username:
    aiogram keeps the first getMe answer and compares `/command@bot` mentions with it, so
    without a username a command meant for another bot in a group would be taken as ours."""

    def __init__(self, *, bot_username: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bot_username = bot_username.removeprefix("@") if bot_username else None

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (aiogram's signature)
    ) -> TelegramType:
        api_method = method.__api_method__
        if api_method == "getUpdates" or not tracing.enabled():  # a long poll is not a request
            return await self._request(bot, method, timeout)
        name, attributes = tracing.bot_api_span(self.api.base, api_method)
        with tracing.span(name, kind=SpanKind.CLIENT, attributes=attributes):
            return await self._request(bot, method, timeout)

    async def _request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None,  # noqa: ASYNC109 (aiogram's)
    ) -> TelegramType:
        try:
            return await super().make_request(bot, method, timeout)
        except TelegramAPIError as exc:
            _clean(exc, bot.token)
            raise

    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str,
    ) -> Response[TelegramType]:
        try:
            try:
                return super().check_response(bot, method, status_code, content)
            except ClientDecodeError:
                return self._leniently(bot, method, status_code, content)
        except TelegramAPIError as exc:
            _clean(exc, bot.token)
            raise

    def _leniently(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        try:
            answer = self.json_loads(content)
        except (ValueError, TypeError, RecursionError):
            answer = None
        if 200 <= status_code < 300 and isinstance(answer, dict) and answer.get("ok") is True:
            result = self._result(bot, method, answer.get("result"))
            return cast("Response[TelegramType]", Response.model_construct(ok=True, result=result))
        description = answer.get("description") if isinstance(answer, dict) else None
        if not isinstance(description, str) or not description:
            description = f"HTTP {status_code}, and the body is not a Bot API answer"
        if status_code < 400:  # neither Telegram's success nor its error: something in between
            status_code = 502
        error: dict[str, Any] = {"ok": False, "error_code": status_code, "description": description}
        parameters = _parameters(answer)
        if parameters:
            error["parameters"] = parameters
        # aiogram raises the exception the status and parameters mean.
        return super().check_response(bot, method, status_code, json.dumps(error))

    def _result(self, bot: Bot, method: TelegramMethod[Any], result: Any) -> Any:
        name = method.__api_method__
        if name == "getUpdates" and isinstance(result, list):
            updates = [read_update(item, bot) for item in result]
            read = [update for update in updates if update is not None]
            if read or not result:
                return read
        if name == "getMe" and bot.id:
            log.warning("getMe's result is not a User; using the id in the token")
            return User(
                id=bot.id,
                is_bot=True,
                first_name=result_field(result, "first_name") or "",
                username=result_field(result, "username") or self.bot_username,
            )
        if name.startswith("get"):
            raise UnexpectedResult(
                method, f"{name}: Telegram answered ok, but with a result of another shape", result
            )
        returning = method.__returning__
        return True if returning is bool or bool in get_args(returning) else None


def _parameters(answer: Any) -> dict[str, int]:
    given = answer.get("parameters") if isinstance(answer, dict) else None
    if not isinstance(given, dict):
        return {}
    return {
        name: value
        for name in ("retry_after", "migrate_to_chat_id")
        if isinstance(value := given.get(name), int) and not isinstance(value, bool) and value
    }


def _clean(exc: TelegramAPIError, token: str) -> None:
    exc.message = safe_description(exc.message, token)
    cause = exc.__cause__
    if cause is not None and token.partition(":")[2] in str(cause):
        exc.__cause__ = None  # aiohttp's error names the URL, and the URL holds the token
        exc.__suppress_context__ = True


def bot_token(settings: BaseServiceSettings) -> str:
    """The bot token to use; in development without one, the stand-in's placeholder."""
    if settings.telegram_bot_token is not None:
        return settings.telegram_bot_token.get_secret_value()
    if settings.is_production:
        raise ConfigurationError("TELEGRAM_BOT_TOKEN is required when APP_ENV=production")
    return DEV_BOT_TOKEN


def make_bot(settings: BaseServiceSettings, *, timeout: float = 10.0, limit: int = 100) -> Bot:
    """An aiogram Bot talking HTML parse mode to TELEGRAM_API_BASE, over `LenientSession`."""
    session = LenientSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_base.rstrip("/")),
        limit=limit,
        timeout=timeout,
        bot_username=settings.telegram_bot_username,
    )
    return Bot(
        token=bot_token(settings),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
