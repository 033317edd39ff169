"""Post previews, end to end through the stand-in with real aiogram: a post event with an
`image_url` is one photo message with the notification's text as its caption (shortened to fit
1024 characters, content first); a photo Telegram refuses goes as the text message, once, and the
delivery row says why; new counts edit the caption (`editMessageCaption`), or the text of a
message that went as text; quiet hours keep the photo; users may turn post images off."""

from datetime import date

import pytest

from services.notifier.render import MAX_CAPTION_LENGTH, visible_length
from shared.contract import EventType, sample_data
from tests.notifier.harness import running_notifier
from tests.notifier.test_delivery_options import (
    AT,
    FAILURE,
    GOLDENS,
    QUIET,
    SUCCESS,
    at_night,
    held_until_morning,
)

pytestmark = pytest.mark.integration

IMAGE = "https://cdn.example.com/posts/1.jpg"
UNREACHABLE = "https://cdn.invalid/posts/1.jpg"
"""A host Telegram can never fetch from (RFC 2606): the stand-in answers 400, as Telegram does."""
COUNTS = {"post_id": "post-1", "likes": 7, "comments": 1}


def photos(h, chat):
    """The photo of each message the bot sent to `chat` (None: a text message)."""
    return [m["photo"] for m in h.standin.messages(chat, "bot")]


@pytest.mark.parametrize("language", ["ko", "en"])
@pytest.mark.parametrize("event_type", [EventType.POST_SUCCESS, EventType.POST_FAILURE])
async def test_a_post_with_an_image_is_one_photo_captioned_with_the_golden_text(
    database_url, rabbitmq_url, language, event_type
):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = await h.new_link(language=language)
        data = sample_data(event_type, date(2026, 2, 26)) | {"image_url": IMAGE}
        event = await h.publish(event_type, user, data, occurred_at=AT)
        row = await h.wait_delivery(event, "sent")
        (message,) = h.standin.messages(chat, "bot")  # one notification, one message
        golden = (GOLDENS / f"{event_type.value}.{language}.txt").read_text(encoding="utf-8")
        assert message["photo"] == IMAGE and message["text"] + "\n" == golden
        assert message["reply_markup"]["inline_keyboard"]  # its buttons come with it
        assert "link_preview_options" not in message["options"]  # a photo has no link preview
        assert row["payload"] == {"sent_as": "photo"} and row["error"] is None


async def test_a_long_post_is_captioned_within_1024_characters_content_cut_first(
    database_url, rabbitmq_url
):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = await h.new_link()
        long_link = "https://instagram.com/p/" + "x" * 900
        data = SUCCESS | {"content": "😀" * 300, "post_url": long_link, "image_url": IMAGE}
        event = await h.publish("post_success", user, data)
        await h.wait_delivery(event, "sent")
        (message,) = h.standin.messages(chat, "bot")
        caption = message["text"]
        assert message["photo"] == IMAGE
        assert visible_length(caption) <= MAX_CAPTION_LENGTH
        assert f"🔗 {long_link}" in caption  # the link is whole: the content gave way
        assert "📝 😀" in caption and "😀..." in caption
        assert "👥 좋아요: 0 | 댓글: 0" in caption


@pytest.mark.parametrize("language", ["ko", "en"])
async def test_a_photo_telegram_refuses_goes_as_the_text_once_and_the_row_says_why(
    database_url, rabbitmq_url, language
):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = await h.new_link(language=language)
        data = sample_data(EventType.POST_SUCCESS, date(2026, 2, 26))
        data |= {"image_url": UNREACHABLE, "post_id": COUNTS["post_id"]}
        event = await h.publish("post_success", user, data, occurred_at=AT)
        row = await h.wait_delivery(event, "sent")
        (message,) = h.standin.messages(chat, "bot")
        golden = (GOLDENS / f"post_success.{language}.txt").read_text(encoding="utf-8")
        assert message["photo"] is None and message["text"] + "\n" == golden
        assert row["error"].startswith("photo refused (") and row["error"].endswith("sent as text")
        assert "failed to get HTTP URL content" in row["error"]
        assert row["payload"] is None  # a text message: later counts edit its text
        update = await h.publish("post_metrics_updated", user, COUNTS)
        await h.wait_delivery(update, "edited")
        (edited,) = h.standin.messages(chat, "bot")
        assert edited["edited"] and edited["photo"] is None


async def test_new_counts_edit_the_photos_caption(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = await h.new_link(language="en")
        event = await h.publish("post_success", user, SUCCESS | {"image_url": IMAGE})
        await h.wait_delivery(event, "sent")
        update = await h.publish("post_metrics_updated", user, COUNTS)
        await h.wait_delivery(update, "edited")
        (message,) = h.standin.messages(chat, "bot")
        assert message["photo"] == IMAGE and message["edited"]
        assert "👥 Likes: 7 | Comments: 1" in message["text"]
        assert "👥 Likes: 0 | Comments: 0" in message["edits"][0]["text"]
        assert h.standin.stats["requests"].get("editMessageText", 0) == 0


async def test_what_is_not_a_photo_goes_as_text(database_url, rabbitmq_url):
    async with running_notifier(database_url, rabbitmq_url) as h:
        user, chat = await h.new_link()
        off, off_chat = await h.new_link(post_images=False)  # the user turned post images off
        not_http = await h.publish("post_failure", user, FAILURE | {"image_url": "ftp://x/1.jpg"})
        turned_off = await h.publish("post_success", off, SUCCESS | {"image_url": IMAGE})
        automation = {"automation_name": "a", "platforms": ["x"], "execution_time": "now",
                      "image_url": IMAGE}  # fmt: skip
        no_photo_type = await h.publish("automation_executed", user, automation)
        for event in (not_http, turned_off, no_photo_type):
            row = await h.wait_delivery(event, "sent")
            assert row["error"] is None
        assert photos(h, chat) == [None, None] and photos(h, off_chat) == [None]
        assert h.standin.stats["requests"].get("sendPhoto", 0) == 0


async def test_a_held_photo_is_released_as_a_photo_with_its_new_counts_and_a_fold_as_text(
    database_url, rabbitmq_url
):
    clock, night = at_night(database_url, rabbitmq_url)
    async with night as h:
        alone, alone_chat = await h.new_link(language="en", **QUIET)
        folded, folded_chat = await h.new_link(**QUIET)
        held = [
            await h.publish("post_success", alone, SUCCESS | {"image_url": IMAGE}),
            await h.publish("post_success", folded, SUCCESS | {"image_url": IMAGE}),
            await h.publish("post_failure", folded, FAILURE),
        ]
        for event in held:
            await h.wait_delivery(event, "held")
        update = await h.publish("post_metrics_updated", alone, COUNTS)
        await h.wait_delivery(update, "edited")  # the held message was updated instead
        await held_until_morning(h, clock, held)
        (released,) = h.standin.messages(alone_chat, "bot")
        assert released["photo"] == IMAGE
        assert "👥 Likes: 7 | Comments: 1" in released["text"]
        (fold,) = h.standin.messages(folded_chat, "bot")
        assert fold["photo"] is None and fold["text"].startswith("🌙")
