"""The linker's FastAPI app: REST API, Telegram webhook, health, and the lifecycle of its parts.

`create_app` wires the given parts together; its lifespan connects the publisher, starts the
event consumer, and starts receiving bot updates (long polling, or `setWebhook`), and stops all
of them again, closing the publisher and the bot's session. The engine stays the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import tracing
from services.common.auth import install_auth, make_verifier
from services.common.callbacks import callback_key
from services.common.chat_ids import ChatIdCipher
from services.common.internal_events import internal_events_key
from services.common.jsonapi import BodyLimit
from services.common.telegram import has_event, read_update
from services.common.web import (
    ReadinessCheck,
    broker_check,
    database_check,
    error_body,
    health_router,
    install_common,
)
from services.linker.api.deliveries import make_admin_api, make_notifications_api
from services.linker.api.errors import install_error_handler
from services.linker.api.routes import make_api, make_preferences_api
from services.linker.bot import (
    BotSender,
    bot_username_source,
    make_dispatcher,
    set_commands,
    update_types,
)
from services.linker.events import broker_ready, declare_topology, make_broker
from services.linker.ports import Clock
from services.linker.service import LinkService
from services.linker.settings import LinkerSettings
from services.linker.store import PostgresLinkStore
from shared.models import utcnow
from shared.publisher import EventPublisher
from shared.settings import TELEGRAM_API_DEFAULT

log = logging.getLogger(__name__)

SERVICE = "linker"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)


def create_app(
    settings: LinkerSettings,
    engine: AsyncEngine,
    publisher: EventPublisher,
    bot: Bot,
    *,
    clock: Clock = utcnow,
) -> FastAPI:
    """The linker app over real parts (see the module docstring for who closes what)."""
    cipher = ChatIdCipher(settings.encryption_keys())
    links = LinkService(
        PostgresLinkStore(engine),
        cipher,
        BotSender(bot),
        publisher,
        bot_username_source(bot, settings.telegram_bot_username),
        token_ttl=timedelta(seconds=settings.link_token_ttl_seconds),
        test_messages_per_minute=settings.test_messages_per_minute,
        clock=clock,
    )
    # The notifier signs its buttons with the same bot token, so presses on them verify here.
    dispatcher = make_dispatcher(links, settings.link_token_ttl_seconds, callback_key(bot.token))
    tracing.trace_updates(dispatcher)
    broker = make_broker(
        settings.rabbitmq_url.get_secret_value(),
        links,
        internal_events_key(bot.token),  # the notifier signs its telegram.* events with it
        prefetch=settings.linker_prefetch,
    )
    updates = _PollingUpdates(dispatcher, bot) if not settings.webhook_mode else None
    webhook_secret = _webhook_secret(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await publisher.connect()
            stack.push_async_callback(publisher.close)
            stack.push_async_callback(bot.session.close)
            await broker.connect()
            stack.push_async_callback(broker.stop)
            await declare_topology(broker)
            await broker.start()
            await set_commands(bot)
            if updates is not None:
                updates.start()
                stack.push_async_callback(updates.stop)
            else:
                assert settings.telegram_webhook_url is not None and webhook_secret is not None
                await bot.set_webhook(
                    settings.telegram_webhook_url,
                    secret_token=webhook_secret,
                    allowed_updates=update_types(dispatcher),
                )
                log.info("receiving bot updates by webhook")
            yield

    # Swagger UI and ReDoc served by the service itself: /docs works offline and air-gapped.
    app = FastAPIOffline(
        title="SNS Telegram linker",
        version="1.0.0",
        description=(
            "Account linking between the SNS platform and Telegram, notification preferences "
            "and the delivery log. Every `/api/telegram` endpoint needs `Authorization: Bearer "
            "<JWT>`, except verify-link, which is for a trusted bot that runs elsewhere "
            "(`X-Bot-Api-Key`); every `/api/admin` endpoint an admin token (audience "
            "ADMIN_JWT_AUDIENCE, `admin` in `roles`). Every error is "
            '`{"status": "error", "code": ..., "message": ...}`; request bodies are '
            "`application/json` (415 otherwise), JSON (400 otherwise) and at most 16 KiB "
            "(413 otherwise); an unreachable database is a 503 with Retry-After."
        ),
        lifespan=lifespan,
    )
    # Inside install_common's middleware, so its 413 is raised in the route and answered there.
    app.add_middleware(BodyLimit, prefix="/api/")
    install_common(app, SERVICE)
    install_auth(app, make_verifier(settings), admin=make_verifier(settings, admin=True))
    bot_api_key = settings.linker_bot_api_key
    # In development against a local Bot API (the stand-in), link-account says how to link there.
    local_bot_api = (
        not settings.is_production and settings.telegram_api_base != TELEGRAM_API_DEFAULT
    )
    app.include_router(
        make_api(
            links,
            bot_api_key.get_secret_value() if bot_api_key else None,
            standin_inbox=settings.telegram_api_base.rstrip("/") if local_bot_api else None,
        )
    )
    app.include_router(make_preferences_api(links))
    app.include_router(make_notifications_api(engine))
    app.include_router(make_admin_api(engine))
    install_error_handler(app)
    checks: dict[str, ReadinessCheck] = {
        "database": database_check(engine),
        "rabbitmq": broker_ready(broker),
        "publisher": broker_check(lambda: publisher.is_connected),
    }
    if updates is not None:
        checks["telegram_updates"] = updates.check
    app.include_router(health_router(checks))
    if webhook_secret is not None:
        _add_webhook(app, dispatcher, bot, webhook_secret)
    _document_errors(app)
    app.state.links = links
    return app


def _webhook_secret(settings: LinkerSettings) -> str | None:
    if not settings.webhook_mode:
        return None
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    # Development only (production requires the variable): good for one replica.
    log.warning("TELEGRAM_WEBHOOK_SECRET is not set: using a random one for this process")
    return secrets.token_urlsafe(32)


def _add_webhook(app: FastAPI, dispatcher: Dispatcher, bot: Bot, secret: str) -> None:
    """`POST /telegram/webhook`: 401/403 without the secret, 400 for a body without an update
    id, 200 for every update (one aiogram cannot read too), 503 only if handling it failed."""
    expected = secret.encode()

    @app.post(WEBHOOK_PATH, include_in_schema=False)
    async def telegram_webhook(request: Request) -> JSONResponse:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return JSONResponse(error_body(401, f"{SECRET_HEADER} is required"), status_code=401)
        if not hmac.compare_digest(given.encode(), expected):
            return JSONResponse(error_body(403, f"{SECRET_HEADER} is wrong"), status_code=403)
        try:
            update = read_update(await request.json(), bot)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than any update
            update = None
        if update is None:
            return JSONResponse(error_body(400, "the body is not a Telegram update"), 400)
        # An update aiogram cannot read is reduced to what can be answered (a press), or to its
        # id alone, and acknowledged: Telegram would only send the same again.
        if not has_event(update):
            return JSONResponse({"ok": True})
        try:
            await dispatcher.feed_update(bot, update)
        except Exception:
            # The router answers handler errors itself; anything left is ours: let Telegram retry.
            log.exception("webhook update %s failed", update.update_id)
            return JSONResponse(error_body(503, "the update could not be processed"), 503)
        return JSONResponse({"ok": True})


class _PollingUpdates:
    """Long polling in a background task, with a readiness check on it."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot) -> None:
        self._dispatcher = dispatcher
        self._bot = bot
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telegram-polling")

    async def _run(self) -> None:
        try:
            # getUpdates is refused while a webhook is set.
            await self._bot.delete_webhook(drop_pending_updates=False)
        except TelegramAPIError as exc:
            log.warning("deleteWebhook failed (polling will retry): %s", exc.message)
        log.info("receiving bot updates by long polling")
        try:
            await self._dispatcher.start_polling(
                self._bot,
                handle_signals=False,
                close_bot_session=False,
                allowed_updates=update_types(self._dispatcher),
            )
        except Exception:
            log.exception("long polling stopped; /readyz now fails")
            raise

    async def stop(self) -> None:
        if self._task is None or self._task.done():
            return
        try:
            # Cancelling the task alone would leave aiogram's inner polling task running.
            await self._dispatcher.stop_polling()
        except RuntimeError:  # polling has not started yet
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def check(self) -> None:
        if self._task is None or self._task.done():
            raise RuntimeError("long polling is not running")


def _document_errors(app: FastAPI) -> None:
    """Errors are in the common shape, so drop FastAPI's default 422 (the routes declare theirs)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.get("responses", {})
                    if "HTTPValidationError" in str(responses.get("422")):
                        del responses["422"]
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
