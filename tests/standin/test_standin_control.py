"""The control API over HTTP (StandInClient), the in-process helpers, and the CLI."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramServerError,
)

from services.standin.client import StandInClient, StandInError
from services.standin.server import StandIn

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.unit
async def test_client_round_trip(standin: StandIn, bot: Bot) -> None:
    async with StandInClient(standin.base_url) as client:
        assert (await client.info())["bot_username"] == "piwpiwtelegrambot"
        update = await client.user_sends(
            -100500, "hi all", user={"id": 9, "first_name": "Ann"}, chat_type="supergroup",
            title="Team",
        )  # fmt: skip
        assert update["message"]["chat"] == {"id": -100500, "title": "Team", "type": "supergroup"}
        assert update["message"]["from"]["first_name"] == "Ann"
        assert [u["update_id"] for u in await client.pending_updates()] == [update["update_id"]]

        waiter = asyncio.create_task(client.wait_for_messages(-100500, 2, timeout=10))
        sent = await bot.send_message(-100500, "<b>one</b>", parse_mode="HTML")
        await bot.send_message(-100500, "two")
        bot_msgs = await waiter
        assert [m["text"] for m in bot_msgs] == ["one", "two"]
        assert [m["direction"] for m in await client.messages(-100500)] == ["user", "bot", "bot"]

        nxt, items = await client.sent(0)
        assert [m["text"] for m in items] == ["one", "two"] and nxt == 2
        later = asyncio.create_task(client.sent(nxt, timeout=10))
        await bot.send_message(5, "three")
        assert [m["text"] for m in (await later)[1]] == ["three"]

        press = await client.press(-100500, sent.message_id, "go")
        query_id = press["callback_query"]["id"]
        await bot.answer_callback_query(query_id, text="done")
        assert (await client.callback(query_id, timeout=5))["text"] == "done"

        await client.set_chat_state(77, "blocked")
        with pytest.raises(TelegramForbiddenError):
            await bot.send_message(77, "x")
        await client.add_fault(error_code=503, description="Service Unavailable", count=1)
        with pytest.raises(TelegramServerError):
            await bot.send_message(1, "x")
        await client.add_fault(error_code=500)
        await client.clear_faults()
        assert (await bot.send_message(1, "ok")).text == "ok"

        limits = await client.set_limits(global_per_sec=30, per_chat_per_sec=1)
        assert limits["global_per_sec"] == 30 and limits["per_group_per_min"] is None
        stats = await client.stats()
        assert stats["send_message_accepted"] == 4
        assert stats["fault_hits"] == 1 and stats["user_messages"] == 1
        chats = await client.chats()
        assert {c["id"] for c in chats} >= {-100500, 5, 77, 1}

        with pytest.raises(StandInError):
            await client.press(-100500, 999, "nope")
        await client.reset()
        assert await client.chats() == []
        assert (await client.stats())["limits"]["global_per_sec"] is None


@pytest.mark.unit
async def test_in_process_helpers(standin: StandIn, bot: Bot) -> None:
    standin.user_sends(42, "/start tok_1")
    await bot.send_message(42, "welcome")
    assert [m["direction"] for m in standin.messages(42)] == ["user", "bot"]
    assert standin.chats()[0]["message_count"] == 2
    assert standin.sent(0)[0]["text"] == "welcome"
    with pytest.raises(TimeoutError):
        await standin.wait_for_messages(42, 2, timeout=0.2)


@pytest.mark.unit
async def test_page_is_served(standin: StandIn) -> None:
    async with aiohttp.ClientSession() as http, http.get(standin.base_url + "/") as resp:
        page = await resp.text()
    assert resp.status == 200
    assert "<title>Telegram stand-in</title>" in page
    assert ".innerHTML" not in page  # user content must never go through innerHTML


@pytest.mark.e2e
async def test_cli_runs_as_a_process() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.standin", "--port", "0", "--bot-username", "clibot",
        "--limits", cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, line
        async with StandInClient(match.group(1)) as client:
            info = await client.info()
            assert info["bot_username"] == "clibot"
            assert info["limits"]["global_per_sec"] == 30
            await client.user_sends(1, "hello")
            assert (await client.stats())["user_messages"] == 1
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


@pytest.mark.unit
async def test_a_group_migrates_to_a_supergroup(standin: StandIn, bot: Bot) -> None:
    standin.user_sends(-4242, "/start", chat_type="group", title="Team")
    async with StandInClient(standin.base_url) as client:
        with pytest.raises(StandInError):
            await client.migrate(77)  # not a group
        old, new = await client.migrate(-4242)
    supergroup = -1_000_000_004_242
    assert old["message"]["chat"]["id"] == -4242
    assert old["message"]["migrate_to_chat_id"] == supergroup
    assert new["message"]["chat"] == {"id": supergroup, "title": "Team", "type": "supergroup"}
    assert new["message"]["migrate_from_chat_id"] == -4242
    updates = await bot.get_updates()
    assert [u.message.migrate_to_chat_id for u in updates[1:2] if u.message] == [supergroup]
    with pytest.raises(TelegramMigrateToChat) as refused:
        await bot.send_message(-4242, "to the old id")
    assert refused.value.migrate_to_chat_id == supergroup
    assert (await bot.send_message(supergroup, "to the new id")).chat.type == "supergroup"
