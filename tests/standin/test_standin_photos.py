"""Photos in the stand-in, from real aiogram 3: `sendPhoto` by URL with an HTML caption, refused as
Telegram refuses a photo it cannot fetch or a caption over 1024 characters; `editMessageCaption`
for photos only, and `editMessageText` for texts only."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from hypothesis import given
from hypothesis import strategies as st

from services.standin.photos import caption_of, photo_of
from services.standin.server import StandIn
from services.standin.wire import ApiError

pytestmark = pytest.mark.unit

IMAGE = "https://cdn.example.com/posts/1.jpg"


async def test_a_photo_by_url_with_an_html_caption(standin: StandIn, bot: Bot) -> None:
    sent = await bot.send_photo(42, IMAGE, caption="<b>new</b> post", parse_mode="HTML",
                                disable_notification=True)  # fmt: skip
    assert sent.photo and sent.photo[-1].width == 320
    assert sent.caption == "new post" and sent.text is None
    assert sent.caption_entities and sent.caption_entities[0].type == "bold"
    (stored,) = standin.bot_messages(42)
    assert stored["photo"] == IMAGE and stored["text"] == "new post"
    assert stored["options"] == {"disable_notification": True}
    assert standin.stats["send_message_accepted"] == 1  # counted with sendMessage, as Telegram does


@pytest.mark.parametrize(
    ("photo", "description"),
    [
        ("https://cdn.invalid/1.jpg", "failed to get HTTP URL content"),
        ("ftp://cdn.example.com/1.jpg", "wrong file identifier/HTTP URL specified"),
        ("not a url", "wrong file identifier/HTTP URL specified"),
    ],
)
async def test_a_photo_telegram_cannot_take_is_refused(
    standin: StandIn, bot: Bot, photo: str, description: str
) -> None:
    with pytest.raises(TelegramBadRequest, match=description):
        await bot.send_photo(42, photo, caption="x")
    assert standin.bot_messages(42) == []


async def test_a_caption_over_1024_characters_is_refused(standin: StandIn, bot: Bot) -> None:
    await bot.send_photo(42, IMAGE, caption="가" * 1024)  # at the limit: taken
    with pytest.raises(TelegramBadRequest, match="caption is too long"):
        await bot.send_photo(42, IMAGE, caption="😀" * 513)  # 1026 UTF-16 code units
    assert len(standin.bot_messages(42)) == 1


async def test_captions_are_edited_on_photos_and_texts_on_texts(standin: StandIn, bot: Bot) -> None:
    photo = await bot.send_photo(42, IMAGE, caption="likes: 1")
    text = await bot.send_message(42, "likes: 1")
    edited = await bot.edit_message_caption(chat_id=42, message_id=photo.message_id,
                                            caption="likes: 2")  # fmt: skip
    assert not isinstance(edited, bool) and edited.caption == "likes: 2"
    with pytest.raises(TelegramBadRequest, match="no caption in the message to edit"):
        await bot.edit_message_caption(chat_id=42, message_id=text.message_id, caption="x")
    with pytest.raises(TelegramBadRequest, match="no text in the message to edit"):
        await bot.edit_message_text("x", chat_id=42, message_id=photo.message_id)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_caption(chat_id=42, message_id=photo.message_id,
                                       caption="likes: 2")  # fmt: skip
    first, _ = standin.bot_messages(42)
    assert first["text"] == "likes: 2" and first["edits"][0]["text"] == "likes: 1"


@given(st.one_of(st.none(), st.text(max_size=300), st.integers(), st.booleans()))
def test_any_photo_value_is_taken_or_refused_with_a_400(value: object) -> None:
    try:
        kept = photo_of({"photo": value})
    except ApiError as error:
        assert error.code == 400
    else:
        assert kept == str(value)


@given(st.text(max_size=1500), st.sampled_from([None, "HTML", "MarkdownV2"]))
def test_any_caption_is_parsed_or_refused_with_a_400(caption: str, mode: str | None) -> None:
    try:
        parsed = caption_of({"caption": caption, "parse_mode": mode}, strict_entities=True)
    except ApiError as error:
        assert error.code == 400
    else:
        assert len(parsed.shown.encode("utf-16-le")) // 2 <= 1024
