"""The stand-in's web page in a real (headless) Chromium, driven by Playwright."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from services.standin.server import StandIn
from tests.browser import TIMEOUT_MS, headless_chromium

pytestmark = pytest.mark.e2e


async def test_page_shows_chat_and_acts_as_user(standin: StandIn, bot: Bot, tmp_path: Path) -> None:
    nasty = '<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned=2"> & co'
    body = f"Alert for <b>{html.escape(nasty)}</b>\nline two\n    indented line three"
    expected = f"Alert for {nasty}\nline two\n    indented line three"
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Acknowledge", callback_data="ack:1")],
            [InlineKeyboardButton(text="Open run", url="https://example.com/runs/1")],
        ]
    )
    sent = await bot.send_message(42, body, parse_mode="HTML", reply_markup=markup)
    standin.user_sends(42, "/start abc")
    await bot.send_message(-100123, "Group notice", reply_markup=None)

    async with headless_chromium() as browser:
        page = await browser.new_page(viewport={"width": 1100, "height": 700})
        page.set_default_timeout(TIMEOUT_MS)
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await page.goto(standin.base_url + "/")
        await page.locator('#chat-list li[data-chat-id="42"]').click()

        bubble = page.locator(f'.msg[data-message-id="{sent.message_id}"]')
        text_node = bubble.locator(".msg-text")
        await text_node.wait_for()
        assert await text_node.text_content() == expected
        assert await page.locator("#messages script, #messages img").count() == 0
        assert await text_node.locator("b").count() == 1  # the bold entity is rendered
        assert await page.evaluate("window.__pwned === undefined")
        link = bubble.locator("a.kb-url")
        assert await link.get_attribute("href") == "https://example.com/runs/1"

        await page.locator("#composer-input").fill("my reply\nsecond line")
        await page.locator("#send-btn").click()
        await standin.wait_for(
            lambda: any(
                u.get("message", {}).get("text") == "my reply\nsecond line"
                for u in standin.pending_updates
            ),
            timeout=15,
        )
        await page.locator(".msg.user .msg-text", has_text="second line").wait_for()
        before = tmp_path / "standin-page-before-edit.png"
        await page.screenshot(path=str(before), full_page=True)

        await bubble.locator("button.kb-callback", has_text="Acknowledge").click()
        await standin.wait_for(lambda: len(standin.state.callbacks) == 1, timeout=15)
        query = next(iter(standin.state.callbacks.values()))
        assert (query.chat_id, query.message_id, query.data) == (42, sent.message_id, "ack:1")
        assert any(
            u.get("callback_query", {}).get("id") == query.id for u in standin.pending_updates
        )
        await bot.answer_callback_query(query.id, text="Acknowledged ✓")
        await page.locator("#toast", has_text="Acknowledged").wait_for()

        await bot.edit_message_text(
            "Alert handled", chat_id=42, message_id=sent.message_id, reply_markup=markup
        )
        await bubble.locator(".edited").wait_for()
        shot = tmp_path / "standin-page.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        print(f"screenshots: {before} {shot}")
        assert dialogs == []
