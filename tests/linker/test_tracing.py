"""The linker's publishes join the trace of what caused them (in-process linker, real RabbitMQ,
PostgreSQL and stand-in, spans kept in memory): a Retry press arriving by webhook publishes
`post_retry_requested` in the webhook request's trace, where the bot's answer is an HTTP span
without the token; an API request carrying the frontend's `traceparent` publishes
`telegram.unlinked` in the frontend's trace."""

from __future__ import annotations

import pytest

from services.common.callbacks import short_uuid
from services.linker.app import SECRET_HEADER, WEBHOOK_PATH
from shared.contract import EventType
from tests.linker.helpers import bearer
from tests.linker.test_buttons import record_failure
from tests.linker.test_webhook import message_update
from tests.support.ids import new_chat_id, new_user
from tests.support.links import seed_links
from tests.support.traces import Span, recording, text_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SECRET = "webhook-secret_0123456789"
FRONTEND_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
FRONTEND_SPAN = "00f067aa0ba902b7"


def ancestors(spans: list[Span], span: Span) -> list[Span]:
    """`span`'s parents, nearest first, as far as they were recorded here."""
    by_id = {s.span_id: s for s in spans}
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


async def published(recorded, routing_key: str, event_id: str) -> Span:
    name = f"sns.events.{routing_key} publish"

    def find() -> Span | None:
        return next(
            (
                s
                for s in recorded.spans()
                if s.name == name and s.attributes.get("messaging.message.id") == event_id
            ),
            None,
        )

    return await eventually(find, 10, what=f"the publish span of {event_id}")


async def test_a_retry_press_by_webhook_publishes_in_the_request_trace(
    start_linker, tap, sessions
) -> None:
    with recording() as recorded:
        linker = await start_linker(
            telegram_webhook_url="https://linker.example/telegram/webhook",
            telegram_webhook_secret=SECRET,
        )
        user, chat = new_user(), new_chat_id()
        linking = await linker.client.get("/api/telegram/link-account", headers=bearer(user))
        start = message_update(chat, f"/start {linking.json()['token']}")
        await linker.client.post(WEBHOOK_PATH, json=start, headers={SECRET_HEADER: SECRET})
        events = await tap(EventType.POST_RETRY_REQUESTED)
        failure = await record_failure(sessions, user)
        retry = linker.sign(chat, "r", short_uuid(failure))
        message_id = await linker.notify(chat, "❌ SNS 게시 실패", {"🔄 재시도": retry})
        update = linker.standin.press(chat, message_id, retry)

        response = await linker.client.post(
            WEBHOOK_PATH, json=update, headers={SECRET_HEADER: SECRET}
        )
        assert response.status_code == 200, response.text
        answer = await linker.standin.wait_for_callback_answer(update["callback_query"]["id"])
        assert answer.text == "🔄 재시도를 요청했습니다"
        event = await events.next()

        publish = await published(recorded, "post_retry_requested", str(event.event_id))
        chain = ancestors(recorded.spans(), publish)
        assert [s.name for s in chain[:1]] == ["telegram update"]
        request = chain[-1]
        assert request.kind == "SERVER" and request.parent_id is None
        assert request.attributes["http.route"] == WEBHOOK_PATH
        assert publish.trace_id == request.trace_id
        # The bot's answer to the press: an HTTP client span in the same trace, token redacted.
        spans = recorded.spans()
        answer_span = next(s for s in spans if s.name == "POST /bot{token}/answerCallbackQuery")
        assert chain[0] in ancestors(spans, answer_span)
        assert answer_span.attributes["url.full"].endswith("/botREDACTED/answerCallbackQuery")
        token = linker.settings.telegram_bot_token
        assert token is not None
        secret = token.get_secret_value().partition(":")[2]
        assert not [s.name for s in spans if secret in text_of(s)]


async def test_an_api_request_publishes_in_the_callers_trace(start_linker, tap, engine) -> None:
    with recording() as recorded:
        linker = await start_linker()
        user, chat = new_user(), new_chat_id()
        await seed_links(engine, [(user, chat)])
        events = await tap(EventType.TELEGRAM_UNLINKED)

        response = await linker.client.post(
            "/api/telegram/unlink-account",
            headers={**bearer(user), "traceparent": f"00-{FRONTEND_TRACE}-{FRONTEND_SPAN}-01"},
        )
        assert response.status_code == 200, response.text
        event = await events.next()

        publish = await published(recorded, "telegram.unlinked", str(event.event_id))
        assert publish.trace_id == FRONTEND_TRACE
        request = ancestors(recorded.spans(), publish)[-1]
        assert request.kind == "SERVER" and request.parent_id == FRONTEND_SPAN
