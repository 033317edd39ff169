"""A scheduler trigger starts a trace that the notifier continues (scheduler and notifier
in-process, real RabbitMQ and PostgreSQL, spans kept in memory): the trigger's publish is the
trace's root, and the notifier's consume, render, delivery and sendMessage request are in it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.notifier.harness import running_notifier
from tests.scheduler.harness import make_settings, start_replica
from tests.support.ids import new_chat_id, new_user
from tests.support.traces import Span, in_trace, recording
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PUBLISH = "sns.events.daily_summary publish"
CONSUME = "sns.events.daily_summary process"
SEND = {CONSUME, "render daily_summary", "deliver", "POST /bot{token}/sendMessage"}


async def test_a_scheduler_trigger_starts_the_trace_the_notifier_continues(
    fresh_database_url: str, rabbitmq_url: str
) -> None:
    with recording() as recorded:
        async with running_notifier(fresh_database_url, rabbitmq_url) as notifier:
            user, chat = new_user(), new_chat_id()
            await notifier.link(user, chat)
            replica = await start_replica(
                make_settings(fresh_database_url, rabbitmq_url),
                datetime(2026, 2, 27, 8, 59, tzinfo=UTC),
            )
            try:
                await replica.job.tick()
                replica.clock.set(datetime(2026, 2, 27, 9, 0, 5, tzinfo=UTC))
                await replica.job.tick()
                await notifier.wait_texts(chat, 1, timeout=30)
            finally:
                await replica.close()

            def traced() -> tuple[Span, dict[str, Span]] | None:
                spans = recorded.spans()
                roots = [s for s in spans if s.name == PUBLISH and s.parent_id is None]
                for root in roots:
                    found = in_trace(spans, root.trace_id)
                    if found.keys() >= SEND:
                        return root, found
                return None

            root, spans = await eventually(traced, 15, what="the trigger's trace in the notifier")
            assert spans[CONSUME].parent_id == root.span_id
