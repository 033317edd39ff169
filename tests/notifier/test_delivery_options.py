"""How messages are delivered beyond their text, end to end through the stand-in with real
aiogram: types loud, silent (`disable_notification`) or muted; quiet hours that hold or deliver
silently; daily reports silent by default; the golden texts unchanged for users who change
nothing."""

from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from shared.contract import MESSAGE_TYPES, sample_data
from tests.notifier.harness import running_notifier
from tests.notifier.test_preferences_flow import MORNING, NIGHT, Clock
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

GOLDENS = Path(__file__).parent / "goldens"
AT = datetime(2026, 2, 26, 10, 30, tzinfo=UTC)
QUIET = {"quiet_start": time(22), "quiet_end": time(7), "timezone": "UTC"}
FAILURE = {"platform": "instagram", "error": "Connection timeout"}
AUTOMATION = {"automation_name": "a", "platforms": ["x"], "execution_time": "2026-02-26T23:00:00Z"}


async def held_until_morning(h, clock, events):
    """Each event is held for the night's quiet hours, then sent when the morning comes."""
    for event in events:
        await h.wait_delivery(event, "held")
    clock.now = MORNING
    for event in events:
        await h.wait_delivery(event, "sent")


def at_night(database_url, rabbitmq_url):
    """A notifier whose clock stands at 23:00 UTC, and that clock (the test moves it)."""
    clock = Clock(NIGHT)
    return clock, running_notifier(
        database_url, rabbitmq_url, clock=clock, notifier_release_interval_seconds=0.05
    )


def sounds(h, chat):
    """For each message the bot sent to `chat`: whether it asked to arrive without a sound."""
    return [
        m["options"].get("disable_notification", False) for m in h.standin.messages(chat, "bot")
    ]


@pytest.mark.parametrize("language", ["ko", "en"])
async def test_who_changes_nothing_gets_the_golden_texts_and_a_silent_daily_report(
    database_url, rabbitmq_url, language
):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat, language=language)  # the columns' defaults, as a new link has
        for event_type in MESSAGE_TYPES:
            data = sample_data(event_type, date(2026, 2, 26))
            event = await h.publish(event_type, user, data, occurred_at=AT)
            await h.wait_delivery(event, "sent")
        for event_type, message in zip(MESSAGE_TYPES, h.standin.messages(chat, "bot"), strict=True):
            golden = (GOLDENS / f"{event_type.value}.{language}.txt").read_text(encoding="utf-8")
            assert message["text"] + "\n" == golden
            quiet = message["options"].get("disable_notification", False)
            assert quiet is (event_type == "daily_summary"), event_type


async def test_silent_loud_and_muted_types(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(
            user,
            chat,
            silent_types=["post_failure"],
            muted_types=["automation_executed"],
        )
        silent = await h.publish("post_failure", user, FAILURE)
        muted = await h.publish("automation_executed", user, AUTOMATION)
        loud = await h.publish(
            "daily_summary",
            user,
            {"date": "2026-02-26", "total_posts": 1, "successful_posts": 1,
             "failed_posts": 0, "total_engagement": 5},
        )  # fmt: skip
        await h.wait_delivery(silent, "sent")
        await h.wait_delivery(loud, "sent")
        await h.wait_delivery(muted, "skipped")
        assert sounds(h, chat) == [True, False]


async def test_quiet_hours_that_deliver_silently_send_at_once(database_url, rabbitmq_url):
    _, night = at_night(database_url, rabbitmq_url)
    async with night as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat, quiet_mode="silent", silent_types=[], **QUIET)
        event = await h.publish("post_failure", user, FAILURE)
        row = await h.wait_delivery(event, "sent")
        assert row["release_at"] is None  # never held
        assert sounds(h, chat) == [True]
        assert h.texts(chat)[0].startswith("❌ SNS 게시 실패")


async def test_held_messages_keep_their_sound_and_a_fold_is_silent_only_if_all_were(
    database_url, rabbitmq_url
):
    clock, night = at_night(database_url, rabbitmq_url)
    async with night as h:
        alone, alone_chat = new_user(), new_chat_id()
        mixed, mixed_chat = new_user(), new_chat_id()
        await h.link(alone, alone_chat, silent_types=["post_failure"], **QUIET)
        await h.link(mixed, mixed_chat, silent_types=["post_failure"], **QUIET)
        held = [
            await h.publish("post_failure", alone, FAILURE),
            await h.publish("post_failure", mixed, FAILURE),
            await h.publish("post_failure", mixed, FAILURE | {"error": "second"}),
            await h.publish("automation_executed", mixed, AUTOMATION),
        ]
        await held_until_morning(h, clock, held)
        assert sounds(h, alone_chat) == [True]
        assert sounds(h, mixed_chat) == [False]  # one loud notification makes the fold loud


# -- link previews --------------------------------------------------------------------------------
SUCCESS = {
    "platform": "instagram",
    "content": "Post content here...",
    "post_url": "https://instagram.com/p/abc",
    "post_id": "post-1",
}
SMALL = {"url": "https://instagram.com/p/abc", "prefer_small_media": True}
NONE = {"is_disabled": True}


def previews(h, chat):
    """Each bot message's `link_preview_options` as the stand-in recorded them."""
    return [m["options"]["link_preview_options"] for m in h.standin.messages(chat, "bot")]


@pytest.mark.parametrize("language", ["ko", "en"])
async def test_a_post_link_shows_a_small_preview_and_other_messages_none(
    database_url, rabbitmq_url, language
):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat, language=language)
        success = await h.publish("post_success", user, SUCCESS)
        await h.wait_delivery(success, "sent")
        failure = await h.publish("post_failure", user, FAILURE)
        await h.wait_delivery(failure, "sent")
        assert previews(h, chat) == [SMALL, NONE]
        # New counts edit the message and keep its preview.
        update = await h.publish(
            "post_metrics_updated", user, {"post_id": "post-1", "likes": 7, "comments": 1}
        )
        await h.wait_delivery(update, "edited")
        (edited, _) = h.standin.messages(chat, "bot")
        assert edited["edited"] and edited["options"]["link_preview_options"] == SMALL


async def test_previews_turned_off_show_none(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat, link_previews=False)
        event = await h.publish("post_success", user, SUCCESS)
        await h.wait_delivery(event, "sent")
        assert previews(h, chat) == [NONE]


async def test_a_held_post_keeps_its_preview_and_a_fold_has_none(database_url, rabbitmq_url):
    clock, night = at_night(database_url, rabbitmq_url)
    async with night as h:
        alone, alone_chat = new_user(), new_chat_id()
        folded, folded_chat = new_user(), new_chat_id()
        await h.link(alone, alone_chat, **QUIET)
        await h.link(folded, folded_chat, **QUIET)
        held = [
            await h.publish("post_success", alone, SUCCESS),
            await h.publish("post_success", folded, SUCCESS),
            await h.publish("post_failure", folded, FAILURE),
        ]
        await held_until_morning(h, clock, held)
        assert previews(h, alone_chat) == [SMALL]
        assert previews(h, folded_chat) == [NONE]
