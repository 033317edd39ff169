"""Limits that adapt, through the stand-in: a 429 for one chat holds only that chat, and against
a hidden limit lower than the configured one nothing is lost while the rate comes down to it."""

import pytest

from tests.notifier.harness import running_notifier
from tests.support.ids import new_chat_id, new_user, new_users
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

FAILURE = {"platform": "x", "error": "adaptive"}


async def test_a_429_for_one_chat_does_not_pause_the_others(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url, notifier_shutdown_seconds=0.5) as h:
        (held, held_chat), *others = [(new_user(), new_chat_id()) for _ in range(4)]
        for user, chat in [(held, held_chat), *others]:
            await h.link(user, chat)
        h.standin.add_fault(error_code=429, retry_after=60, chat_id=held_chat)
        await h.publish("post_failure", held, FAILURE)
        await eventually(lambda: h.standin.stats["too_many_requests"] == 1, timeout=15)
        for user, _ in others:
            await h.publish("post_failure", user, FAILURE)
        for _, chat in others:  # delivered long before the held chat's 60 s are up
            await h.wait_texts(chat, 1, timeout=30)
        # the others settle (results recorded) while the held one waits its retry_after
        await eventually(lambda: h.notifier.processor.in_flight == 1, timeout=15)
        assert h.texts(held_chat) == []
        assert h.standin.stats["early_retries"] == 0


async def test_under_a_hidden_lower_limit_nothing_is_lost_and_the_rate_comes_down(
    database_url, rabbitmq_url
):
    hidden = {"global_per_sec": 8, "per_chat_per_sec": 1}
    async with running_notifier(database_url, rabbitmq_url, standin_limits=hidden) as h:
        users = new_users(120)
        for user, chat in users:
            await h.link(user, chat)
        for user, _ in users:
            await h.publish("post_failure", user, FAILURE)
        await eventually(
            lambda: h.standin.stats["send_message_accepted"] >= 120, timeout=120, interval=0.2
        )
        assert all(len(h.texts(chat)) == 1 for _, chat in users)  # none lost, none twice
        limiter = h.notifier.processor._limiter
        assert limiter.rate.decreases >= 1
        assert limiter.rate.rate < 30
        # The first overshoot is refused, then far fewer: bounded, not one per message.
        assert 0 < h.standin.stats["too_many_requests"] < 60
        assert h.standin.stats["early_retries"] == 0
