"""What each event becomes, decided without I/O: its dedupe key, its text, what the daily
summary and the buttons need remembered of it, why it goes nowhere, how a post's new counts are
shown, and its plan (`route`): intake calls these with what one batch's transaction looked up."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.common import tracing
from services.common.platforms import platform_key
from services.notifier.keyboards import keyboard, web_url
from services.notifier.preferences import quiet_until
from services.notifier.records import (
    ActivityRow,
    DeliveryStatus,
    EditPlan,
    HeldEdit,
    Hold,
    Link,
    Plan,
    PostMessage,
    SendPlan,
    Settled,
    storable,
)
from services.notifier.render import (
    CAPTIONED,
    TEMPLATES,
    DailyReport,
    PlatformTotals,
    render_caption,
    render_post_success,
)
from services.notifier.telegram import Options, Photo, sent_as_photo
from services.notifier.work import Item
from shared.contract import (
    AutomationExecutedData,
    DailySummaryData,
    Event,
    EventType,
    PostFailureData,
    PostMetricsUpdatedData,
    PostSuccessData,
)

POST_ID_CHARS = 200
STORED_DATA_CHARS = 4000
"""Longest text (or JSON of a nested value) of an event's data kept in `activity.details`."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one batch's transaction looked up, for deciding each event's fate."""

    now: datetime
    links: Mapping[str, Link]
    chats: Mapping[str, int]
    """Decrypted chat ids of the enabled links."""
    reports: Mapping[str, DailyReport]
    posts: Mapping[str, PostMessage]
    superseded: Mapping[str, str]
    """Metrics updates a newer one in the batch replaces, and why."""
    waiting: set[str]
    """Users with held deliveries."""


def route(
    firsts: Mapping[str, Item], lookup: Lookup, callback_key: bytes
) -> tuple[dict[str, Plan], dict[str, Hold], dict[str, HeldEdit]]:
    """Each event's plan (by dedupe key): a message (also held, if the user is in quiet hours
    or has messages waiting), an edit (of a sent or of a held message), or why there is none."""
    plans: dict[str, Plan] = {}
    holds: dict[str, Hold] = {}
    held_edits: dict[str, HeldEdit] = {}
    for key, item in firsts.items():
        event, data = item.event, item.data
        link = lookup.links.get(event.user_id)
        chat_id = lookup.chats.get(event.user_id)
        reason = skip_reason(event, link) or lookup.superseded.get(key)
        if reason is not None or link is None or chat_id is None:
            plans[key] = Settled(reason or "skipped")
        elif isinstance(data, PostMetricsUpdatedData):
            post = lookup.posts.get(key)
            edit = edit_plan(data, post, link, chat_id, chat_tag(callback_key, chat_id))
            if isinstance(edit, HeldEdit):
                held_edits[key] = edit
                plans[key] = Settled("held message updated")
            else:
                plans[key] = edit
        else:
            report = lookup.reports.get(key)
            if isinstance(data, DailySummaryData) and data.has_totals:
                report = report_from_data(data)
            with tracing.span(
                f"render {event.type.value}",
                parent=item.trace,
                links=tracing.link_to_current(),  # the batch that planned it
                attributes={"sns.event.type": event.type.value, "sns.language": link.language},
            ):
                text = render(event, data, report, link.language)
                buttons = keyboard(event.type, event.event_id, event.data, link.language)
            silent = event.type.value in link.silent_types
            until = quiet_until(lookup.now, link.timezone, link.quiet_start, link.quiet_end)
            if until is not None and link.quiet_mode == "silent":
                silent, until = True, None  # quiet hours deliver now, without a sound
            if until is None and event.user_id in lookup.waiting:
                until = lookup.now
            photo = photo_of(data, event.occurred_at, link)
            options = Options(silent, preview_of(event.data, link), link.message_thread_id, photo)
            plans[key] = SendPlan(chat_id, text, buttons, link.language, options)
            if until is not None:  # the row id is filled in once the row exists
                holds[key] = Hold(0, until, {"text": text, "buttons": buttons, **options.payload()})
    return plans, holds, held_edits


def preview_of(data: Mapping[str, Any], link: Link) -> str | None:
    """The post link a notification previews (small), or None: no post link (an http(s) one,
    the same the View post button opens), or the user turned previews off."""
    return web_url(data.get("post_url")) if link.link_previews else None


def photo_of(data: Any, occurred_at: datetime, link: Link) -> Photo | None:
    """The photo a notification is sent as, with its text as the caption, or None: its type is
    never a photo, it carries no http(s) `image_url`, or the user turned post images off."""
    if type(data) not in CAPTIONED or not link.post_images:
        return None
    url = web_url(data.image_url)
    return Photo(url, render_caption(data, occurred_at, link.language)) if url else None


def dedupe_key(event: Event, data: Any) -> str:
    """The key under which at most one message is sent for this event."""
    if isinstance(data, DailySummaryData):
        base = f"daily_summary:{event.user_id}:{data.date.isoformat()}"
        return f"{base}:resend:{event.event_id}" if data.resend else base
    return str(event.event_id)


def render(event: Event, data: Any, report: DailyReport | None, language: str = "ko") -> str:
    """The message text of an event, from its type's template (the daily report is aggregated
    before, and is what its template shows)."""
    template = TEMPLATES.get(event.type)
    if template is None:
        raise TypeError(f"no template for {event.type}")
    if isinstance(data, DailySummaryData):
        assert report is not None
        return template(report, event.occurred_at, language)
    return template(data, event.occurred_at, language)


def stored_data(data: dict[str, Any]) -> dict[str, Any]:
    """An event's `data` as kept in `activity.details["data"]` (the linker's Retry, our edits):
    long texts cut, large nested values dropped, so rows stay small."""
    kept: dict[str, Any] = {}
    for name, value in _storable(data).items():
        if isinstance(value, str):
            kept[name] = value[:STORED_DATA_CHARS]
        elif isinstance(value, dict | list):
            if len(json.dumps(value, ensure_ascii=False)) <= STORED_DATA_CHARS:
                kept[name] = value
        else:  # numbers, booleans, null
            kept[name] = value
    return kept


def _storable(value: Any) -> Any:
    """`value` without what PostgreSQL's jsonb refuses: NUL characters and lone surrogates."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def post_key(post_id: str | None) -> str | None:
    """A post id as `activity.post_id` holds it (at most 200 characters, storable)."""
    return None if post_id is None else _storable(post_id)[:POST_ID_CHARS]


def chat_tag(key: bytes, chat_id: int) -> str:
    """A keyed digest naming the chat a post's message went to (an edit must go to the same)."""
    return hmac.new(key, f"chat:{chat_id}".encode(), hashlib.sha256).hexdigest()[:16]


def report_from_data(data: DailySummaryData) -> DailyReport:
    """A daily report from totals the publisher supplied (the seed's shape)."""
    return DailyReport(
        day=data.date,
        total_posts=data.total_posts or 0,
        successful_posts=data.successful_posts or 0,
        failed_posts=data.failed_posts or 0,
        total_engagement=data.total_engagement or 0,
        platforms={
            platform_key(k): PlatformTotals(v.posts, v.engagement)
            for k, v in (data.platforms or {}).items()
        },
    )


@dataclass(frozen=True, slots=True)
class Recorded:
    """What `activity` keeps of a platform event besides its data: the columns the daily summary
    and edits query, and the details the linker's Retry and edits read."""

    details: dict[str, object]
    platform: str | None = None
    post_id: str | None = None
    likes: int = 0
    comments: int = 0


def _post_success(data: PostSuccessData, chat: str | None) -> Recorded:
    details: dict[str, object] = {"post_id": data.post_id, "post_url": data.post_url}
    if chat is not None:
        details["chat"] = chat
    return Recorded(details, data.platform, data.post_id, data.likes, data.comments)


def _post_failure(data: PostFailureData, chat: str | None) -> Recorded:
    details: dict[str, object] = {"post_id": data.post_id, "error": data.error[:500]}
    return Recorded(details, data.platform, data.post_id)


def _automation_executed(data: AutomationExecutedData, chat: str | None) -> Recorded:
    return Recorded(
        {"automation_name": data.automation_name[:200], "platforms": data.platforms[:50]}
    )


RECORDED: dict[EventType, Callable[[Any, str | None], Recorded]] = {
    EventType.POST_SUCCESS: _post_success,
    EventType.POST_FAILURE: _post_failure,
    EventType.AUTOMATION_EXECUTED: _automation_executed,
}
"""What `activity` keeps of each type recorded as activity (`shared.contract.ACTIVITY_TYPES`)."""


def activity_row(event: Event, data: Any, chat: str | None = None) -> ActivityRow:
    """What the daily summary, the linker's Retry and metrics edits need of a platform event.

    `details["data"]` is the event's data (see `stored_data`); `chat` (a `chat_tag`) names the
    chat a post's success message goes to.
    """
    recorded = RECORDED[event.type](data, chat)
    return ActivityRow(
        event.event_id,
        event.user_id,
        event.type,
        event.occurred_at,
        platform_key(recorded.platform) if recorded.platform is not None else None,
        recorded.likes,
        recorded.comments,
        _storable(recorded.details) | {"data": stored_data(event.data)},
        post_key(recorded.post_id),
    )


def skip_reason(event: Event, link: Link | None) -> str | None:
    """Why this user gets no message, or None when the message should be sent."""
    return link_skip_reason(link, event.type.value)


def link_skip_reason(link: Link | None, event_type: str) -> str | None:
    """Why a message of `event_type` goes nowhere under this link, or None."""
    if link is None:
        return "not linked"
    if not link.enabled or not link.chat_id:
        return "notifications disabled"
    if event_type in link.muted_types:
        return "type muted"
    return None


def edit_plan(
    update: PostMetricsUpdatedData,
    post: PostMessage | None,
    link: Link,
    chat_id: int,
    tag: str,
) -> EditPlan | HeldEdit | Settled:
    """How to show a post's new counts: edit its message, rewrite its held payload, or why not.

    `tag` is the `chat_tag` of the user's chat now; the message must have gone there.
    """
    if post is None:
        return Settled("no earlier message for this post")
    if not post.applied:
        return Settled("older than the counts already shown")
    original = post.details.get("data")
    if not isinstance(original, dict):
        return Settled("the post's notification was not stored")
    try:
        data = PostSuccessData.model_validate(
            original | {"likes": update.likes, "comments": update.comments}
        )
    except ValidationError:
        return Settled("the post's stored notification is invalid")
    text = render_post_success(data, post.occurred_at, link.language)
    buttons = keyboard(EventType.POST_SUCCESS, post.event_id, original, link.language)
    kept = post.payload or {}
    if post.status is DeliveryStatus.HELD and post.delivery_id is not None:
        payload: dict[str, Any] = {"text": text, "buttons": buttons}
        if "photo" in kept:  # held as a photo: its caption shows the counts too
            payload["caption"] = render_caption(data, post.occurred_at, link.language)
        return HeldEdit(post.delivery_id, payload)
    if post.status is not DeliveryStatus.SENT or post.message_id is None:
        return Settled("no message was sent for this post")
    if kept.get("folded"):
        return Settled("the post's message is a quiet-hours fold")
    if post.details.get("chat") != tag:
        return Settled("the post's message is in another chat")
    options = Options(preview=preview_of(original, link))
    if sent_as_photo(kept):  # its text is a caption (`editMessageCaption`)
        caption = render_caption(data, post.occurred_at, link.language)
        options = Options(photo=Photo(data.image_url or "", caption))
    return EditPlan(chat_id, post.message_id, text, buttons, options)
