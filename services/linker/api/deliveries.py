"""The delivery log over HTTP: the user's own notifications for the frontend
(`GET /api/telegram/notifications`) and, for support, one event's whole life and one user's last
events (`/api/admin/telegram/...`, admin tokens only).

Both read the notifier's tables through `services/common/delivery_log.py` (never the notifier).
The admin routes live here, not in the scheduler's admin API: the linker is the service that
serves the delivery log and reads these tables already; the scheduler's admin API is about its
own job. A bad cursor is a 400 `invalid_cursor`; an unknown type or status, a limit out of range
a 422 `invalid_request` whose `details` say which.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.auth import CurrentUser, current_admin
from services.common.delivery_log import (
    MAX_PAGE,
    InvalidCursor,
    LogStatus,
    decode_cursor,
    trace,
    user_log,
)
from services.common.jsonapi import JsonApiRoute, error_responses, fail
from shared.contract import NOTIFICATION_TYPES

LoggedType = Literal[tuple(t.value for t in NOTIFICATION_TYPES)]  # type: ignore[valid-type]
"""The types a user can have notifications of."""
StatusName = Literal[tuple(s.value for s in LogStatus)]  # type: ignore[valid-type]

EXAMPLE_ITEM: dict[str, Any] = {
    "event_id": "7b0c2f0e-5a7e-4c55-9d8e-3f1f3c2b9a10",
    "type": "post_success",
    "occurred_at": "2026-02-26T10:30:00+00:00",
    "received_at": "2026-02-26T10:30:00.412000+00:00",
    "status": "sent",
    "reason": None,
    "held_until": None,
    "dead_letter": None,
    "telegram_message_id": 4711,
    "preview": "✅ Instagram 게시 성공 ⏰ 2026-02-26 19:30 ❤️ 좋아요 1,234 💬 댓글 56",
    "sent_at": "2026-02-26T10:30:00.690000+00:00",
    "attempts": 1,
}
EXAMPLE_SKIPPED: dict[str, Any] = EXAMPLE_ITEM | {
    "event_id": "0d0a3b5e-2f0c-4e7d-8a8b-5f6a7c8d9e01",
    "type": "automation_executed",
    "status": "skipped",
    "reason": "type muted",
    "telegram_message_id": None,
    "preview": None,
    "sent_at": None,
    "attempts": 0,
}
EXAMPLE_DEAD: dict[str, Any] = EXAMPLE_ITEM | {
    "event_id": "5e1d9a7c-3b2f-4c1d-9e8f-7a6b5c4d3e21",
    "type": "post_failure",
    "status": "dead_lettered",
    "reason": "rejected: 400 Bad Request: message is too long",
    "dead_letter": "undeliverable",
    "telegram_message_id": None,
    "sent_at": None,
}
UNAUTHORIZED = "Missing, invalid or expired JWT"
ADMIN_UNAUTHORIZED = "Missing, invalid or expired JWT, or one not issued for admin endpoints"
FORBIDDEN = "The JWT has no `admin` in its `roles`"


class NotificationItem(BaseModel):
    """One notification and what became of it."""

    model_config = {"json_schema_extra": {"examples": [EXAMPLE_ITEM, EXAMPLE_SKIPPED]}}

    event_id: uuid.UUID
    type: str = Field(description="The event type", examples=["post_success"])
    occurred_at: datetime | None = Field(description="When the event happened")
    received_at: datetime = Field(description="When the notifier recorded it")
    status: StatusName = Field(  # type: ignore[valid-type]
        description="sending, held (until `held_until`), sent, edited (an earlier message "
        "updated), skipped (`reason` says why), undeliverable (Telegram refused the chat), "
        "uncertain (sent, no answer: maybe delivered, never resent), failed, dead_lettered "
        "(`dead_letter` and `reason` say why)"
    )
    reason: str | None = Field(description="Why it was skipped, failed or dead-lettered")
    held_until: datetime | None = Field(description="A held notification is sent then")
    dead_letter: str | None = Field(
        description="The dead-letter reason: invalid, undeliverable, retries_exhausted, "
        "processing_error"
    )
    telegram_message_id: int | None = Field(description="The message in the user's chat")
    preview: str | None = Field(description="The start of the message, as plain text")
    sent_at: datetime | None
    attempts: int = Field(description="sendMessage attempts made")


class NotificationPage(BaseModel):
    """A page of the user's notifications, newest first."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "success",
                    "notifications": [EXAMPLE_ITEM, EXAMPLE_SKIPPED, EXAMPLE_DEAD],
                    "next_cursor": "ZDE6MTIzNDU",
                }
            ]
        }
    }

    status: Literal["success"] = "success"
    notifications: list[NotificationItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page"
    )


class EventTrace(BaseModel):
    """Everything recorded about one event, for support."""

    model_config = {"extra": "allow"}

    status: Literal["success"] = "success"
    trace: dict[str, Any] = Field(
        description="received_at, activity (what the event said), deliveries (each as in the "
        "delivery log), handed_over_at (the hand-over mark), refused_attempts (each with "
        "Telegram's answer), processed_at, presses (its buttons pressed)",
        examples=[
            {
                "event_id": EXAMPLE_DEAD["event_id"],
                "found": True,
                "received_at": EXAMPLE_DEAD["received_at"],
                "activity": {"type": "post_failure", "platform": "instagram"},
                "deliveries": [EXAMPLE_DEAD],
                "handed_over_at": "2026-02-26T10:30:00.520000+00:00",
                "refused_attempts": [
                    {
                        "attempt": 1,
                        "at": "2026-02-26T10:30:00.600000+00:00",
                        "failure": "rejected",
                        "error_code": 400,
                        "description": "Bad Request: message is too long",
                        "retry_after": None,
                    }
                ],
                "processed_at": None,
                "presses": [],
            }
        ],
    )


class UserEvents(BaseModel):
    """A user's last events, newest first."""

    status: Literal["success"] = "success"
    user_id: str
    events: list[dict[str, Any]] = Field(examples=[[EXAMPLE_ITEM, EXAMPLE_DEAD]])


def only_query(*names: str) -> Any:
    """A route dependency refusing query parameters other than `names` (422, `details` naming
    each): a misspelt filter must not silently list everything."""
    allowed = frozenset(names)

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise RequestValidationError(
                [{"loc": ("query", name), "msg": "unknown query parameter"} for name in unknown]
            )

    return Depends(check)


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except InvalidCursor as exc:
        fail(400, "invalid_cursor", str(exc))


def make_notifications_api(engine: AsyncEngine) -> APIRouter:
    """`GET /api/telegram/notifications`: the caller's own delivery log."""
    router = APIRouter(prefix="/api/telegram", tags=["notifications"], route_class=JsonApiRoute)

    @router.get(
        "/notifications",
        response_model=NotificationPage,
        responses=error_responses(
            {
                400: "`cursor` is not one this API returned (`invalid_cursor`)",
                401: UNAUTHORIZED,
                422: "`type` or `status` is not one of the listed values, `limit` is out of "
                "range, or a query parameter is unknown (`invalid_request`); `details` says "
                "which",
            }
        ),
        dependencies=[only_query("limit", "cursor", "type", "status")],
        summary="The user's recent notifications and what became of each",
    )
    async def notifications(
        user: CurrentUser,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page")] = 20,
        cursor: Annotated[
            str | None,
            Query(max_length=64, description="`next_cursor` of the previous page"),
        ] = None,
        type: Annotated[
            list[LoggedType] | None,  # type: ignore[valid-type]
            Query(description="Only these types (repeat the parameter for several)"),
        ] = None,
        status: Annotated[
            list[StatusName] | None,  # type: ignore[valid-type]
            Query(description="Only these statuses (repeat the parameter for several)"),
        ] = None,
    ) -> NotificationPage:
        """Newest first, `limit` at a time; follow `next_cursor` for older ones. A page never
        repeats or skips an item because new notifications arrived meanwhile."""
        page = await user_log(
            engine,
            user.user_id,
            limit=limit,
            after=_cursor(cursor),
            types=set(type or ()),
            statuses={LogStatus(s) for s in status or ()},
        )
        return NotificationPage(
            notifications=[NotificationItem.model_validate(i.as_json()) for i in page.items],
            next_cursor=page.next_cursor,
        )

    return router


def make_admin_api(engine: AsyncEngine) -> APIRouter:
    """`/api/admin/telegram`: one event's trace and one user's last events (admin tokens)."""
    router = APIRouter(
        prefix="/api/admin/telegram",
        tags=["admin"],
        dependencies=[Depends(current_admin)],
        route_class=JsonApiRoute,
        responses=error_responses({401: ADMIN_UNAUTHORIZED, 403: FORBIDDEN}),
    )

    @router.get(
        "/events/{event_id}/trace",
        response_model=EventTrace,
        responses=error_responses(
            {
                404: "Nothing is recorded about this event (`event_not_found`); look in the "
                "dead-letter queue with `sns-telegram trace`",
                422: "`event_id` is not a UUID, or a query parameter is unknown "
                "(`invalid_request`)",
            }
        ),
        dependencies=[only_query()],
        summary="Everything recorded about one event",
    )
    async def event_trace(event_id: uuid.UUID) -> EventTrace:
        """Received, activity, delivery intent, refused attempts with Telegram's answers, the
        hand-over mark, the final status, the dead letter and its reason, button presses.
        Whether the dead letter is still in the queue: `sns-telegram trace` (reading the queue
        holds all of it for a moment, which an HTTP call should not)."""
        found = await trace(engine, event_id)
        if not found.found:
            fail(404, "event_not_found", "nothing is recorded about this event")
        return EventTrace(trace=found.as_json())

    @router.get(
        "/users/{user_id}/events",
        response_model=UserEvents,
        responses=error_responses(
            {422: "`last` out of range, or a query parameter is unknown (`invalid_request`)"}
        ),
        dependencies=[only_query("last")],
        summary="One user's last events and what became of each",
    )
    async def user_events(
        user_id: Annotated[str, Path(min_length=1, max_length=128)],
        last: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    ) -> UserEvents:
        """The user's last `last` notifications, newest first (empty for an unknown user)."""
        page = await user_log(engine, user_id, limit=last)
        return UserEvents(user_id=user_id, events=[i.as_json() for i in page.items])

    return router
