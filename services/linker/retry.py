"""The Retry button of a failed post: republish the failure's data as `post_retry_requested`
for the platform, at most `menu.RETRIES_PER_POST` times per post and `menu.RETRIES_PER_USER` per
user in `menu.RETRY_PERIOD` (presses.py checks the button's signature, age and presser first)."""

from __future__ import annotations

import uuid
from datetime import datetime

from prometheus_client import Counter

from services.linker import menu
from services.linker.errors import RateLimited, RetryNotSent, RetryRefused
from services.linker.ports import Press
from services.linker.usecase import UseCase, log
from shared.contract import Event, EventType, InvalidEvent, new_event
from shared.models import Activity
from shared.publisher import PublishError

RETRIES = Counter("linker_retry_requests_total", "Retry button presses", ["outcome"])


def retry_event_id(press_id: str) -> uuid.UUID:
    """The id of the retry request of one button press (the same for a redelivered press)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "sns-telegram:retry:" + press_id)


def retry_event(activity: Activity, press_id: str, now: datetime) -> Event | None:
    """`post_retry_requested` with the failure's original data; None if that data is unusable."""
    details = activity.details
    original = details.get("data")
    if not isinstance(original, dict):
        # Recorded before the notifier kept the whole event: rebuild what the row has.
        original = {
            "platform": activity.platform,
            "error": details.get("error") or "",
            "post_id": details.get("post_id") or activity.post_id,
        }
    data = {**original, "original_event_id": str(activity.event_id)}
    try:
        return new_event(
            EventType.POST_RETRY_REQUESTED,
            activity.user_id,
            data,
            event_id=retry_event_id(press_id),
            occurred_at=now,
        )
    except InvalidEvent as exc:
        log.error("failed post %s cannot be retried: %s", activity.event_id, exc)
        return None


class Retries(UseCase):
    """Retry requests, and the presses of notifications' buttons as the delivery log keeps them."""

    async def record_press(
        self,
        chat_id: int,
        action: str,
        outcome: str,
        *,
        message_id: int | None,
        event_id: uuid.UUID | None = None,
    ) -> None:
        """Note a press of a notification's button (best effort: a press is answered and acted
        on whether or not the note can be written)."""
        press = Press(action, outcome, self.clock(), message_id, event_id)
        try:
            await self.store.record_press(press, self.cipher.lookup(chat_id))
        except Exception as exc:
            log.warning("button press not recorded for the delivery log: %r", exc)

    async def request_retry(self, chat_id: int, failure_id: uuid.UUID, press_id: str) -> str:
        """Publish `post_retry_requested` for a failed post shown in this chat; its platform.

        The event id comes from the press, so a redelivered press publishes the same event.
        Raises `RetryRefused` for another chat's or an unknown event, `RateLimited` past
        `menu.RETRIES_PER_POST` for this post or `menu.RETRIES_PER_USER` for its user in
        `menu.RETRY_PERIOD`, `RetryNotSent`.
        """
        activity = await self.store.failed_post(failure_id, self.cipher.lookup(chat_id))
        now = self.clock()
        event = retry_event(activity, press_id, now) if activity else None
        if event is None:
            RETRIES.labels("refused").inc()
            raise RetryRefused("no such failed post for this chat")
        for key, limit in (
            (f"retry_post:{failure_id}", menu.RETRIES_PER_POST),
            (f"retry_user:{event.user_id}", menu.RETRIES_PER_USER),
        ):
            decision = await self.store.take_rate_slot(
                key, now, limit=limit, period=menu.RETRY_PERIOD
            )
            if not decision.allowed:
                RETRIES.labels("rate_limited").inc()
                raise RateLimited("too many retry requests", decision.retry_after)
        try:
            await self.events.publish(event, mandatory=False)
        except PublishError as exc:
            RETRIES.labels("not_published").inc()
            log.error("retry request not published: %s", exc, extra={"user_id": event.user_id})
            raise RetryNotSent("the retry request could not be sent") from None
        RETRIES.labels("published").inc()
        log.info(
            "post retry requested",
            extra={"user_id": event.user_id, "event_id": str(event.event_id)},
        )
        return str(event.data["platform"])
