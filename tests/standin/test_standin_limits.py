"""Rate limits and retry_after discipline of the stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter

from services.standin.server import Limits, StandIn

pytestmark = pytest.mark.unit


async def _send_all(bot: Bot, chat_ids: list[int]) -> tuple[int, list[TelegramRetryAfter]]:
    results = await asyncio.gather(
        *(bot.send_message(chat_id, f"n{i}") for i, chat_id in enumerate(chat_ids)),
        return_exceptions=True,
    )
    limited = [r for r in results if isinstance(r, TelegramRetryAfter)]
    unexpected = [r for r in results if isinstance(r, BaseException) and r not in limited]
    assert not unexpected, unexpected
    return len(results) - len(limited), limited


async def test_limits_are_off_by_default(standin: StandIn, bot: Bot) -> None:
    ok, limited = await _send_all(bot, [1] * 40)
    assert (ok, limited) == (40, [])


async def test_per_chat_burst_gets_429(standin: StandIn, bot: Bot) -> None:
    standin.set_limits(per_chat_per_sec=1)
    ok, limited = await _send_all(bot, [5] * 6)
    assert ok >= 1 and limited, "a burst of 6 to one chat must hit the 1/s limit"
    assert all(e.retry_after >= 1 for e in limited)
    assert standin.stats["too_many_requests"] == len(limited)
    assert len(standin.bot_messages(5)) == ok


async def test_global_burst_gets_429(standin: StandIn, bot: Bot) -> None:
    standin.set_limits(global_per_sec=5)
    ok, limited = await _send_all(bot, list(range(1, 21)))
    assert limited and 5 <= ok < 20
    assert all(e.retry_after == 1 for e in limited)
    assert "Too Many Requests: retry after 1" in limited[0].message


async def test_within_limits_no_429(standin: StandIn, bot: Bot) -> None:
    standin.set_limits(Limits.telegram())
    ok, limited = await _send_all(bot, list(range(1, 21)))  # 20 distinct chats < 30/s
    assert (ok, limited) == (20, [])
    assert standin.stats["too_many_requests"] == 0


async def test_group_per_minute_limit(standin: StandIn, bot: Bot) -> None:
    standin.set_limits(per_group_per_min=3)
    for i in range(3):
        await bot.send_message(-77, f"g{i}")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(-77, "one too many")
    assert 1 <= info.value.retry_after <= 60
    assert (await bot.send_message(-78, "other group")).chat.id == -78
    assert (await bot.send_message(77, "private chats are not group-limited")).chat.id == 77


async def test_limits_from_constructor_survive_reset(make_bot: Callable[..., Bot]) -> None:
    async with StandIn(limits={"per_group_per_min": 1}) as s:
        bot = make_bot(s.base_url)
        await bot.send_message(-1, "a")
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(-1, "b")
        s.reset()
        assert s.stats["too_many_requests"] == 0
        await bot.send_message(-1, "after reset the window is empty")
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(-1, "but the limit is still on")


async def test_early_retry_is_counted(make_bot: Callable[..., Bot]) -> None:
    async with StandIn(early_retry_grace=0.0) as s:
        bot = make_bot(s.base_url)
        s.add_fault(error_code=429, retry_after=30)
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(1, "x")
        await bot.send_message(2, "another chat is not held by chat 1's retry_after")
        assert s.stats["early_retries"] == 0
        await bot.send_message(1, "ignores retry_after")
        assert s.stats["early_retries"] == 1


async def test_client_that_waits_retry_after_is_not_flagged(make_bot: Callable[..., Bot]) -> None:
    async with StandIn(early_retry_grace=0.0) as s:
        bot = make_bot(s.base_url)
        s.add_fault(error_code=429, retry_after=1)
        with pytest.raises(TelegramRetryAfter) as info:
            await bot.send_message(1, "x")
        await asyncio.sleep(info.value.retry_after)  # the client behaviour under test
        await bot.send_message(1, "x")
        assert s.stats["early_retries"] == 0
        assert [m["text"] for m in s.bot_messages(1)] == ["x"]


async def test_edits_in_a_group_have_their_own_hidden_limit(standin: StandIn, bot: Bot) -> None:
    standin.set_limits(edits_per_group_per_min=2)
    sent = [await bot.send_message(-90, f"m{i}") for i in range(3)]  # sends are not edits
    for message in sent[:2]:
        await bot.edit_message_text("edited", chat_id=-90, message_id=message.message_id)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.edit_message_text("edited", chat_id=-90, message_id=sent[2].message_id)
    assert 1 <= info.value.retry_after <= 60
    private = await bot.send_message(90, "private")
    await bot.edit_message_text("private chats are not", chat_id=90, message_id=private.message_id)
    assert await bot.send_message(-90, "sends still go") is not None


async def test_a_one_way_delay_makes_every_request_a_round_trip_away(
    standin: StandIn, bot: Bot
) -> None:
    standin.set_limits(one_way_delay=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bot.send_message(1, "far away")
    assert loop.time() - started >= 0.1  # there and back
    assert standin.stats["limits"]["one_way_delay"] == 0.05
