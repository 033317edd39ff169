"""getChatMember in the stand-in, read by real aiogram; the control route that sets a status; and
the faults that answer an odd success or a body that is not JSON."""

from __future__ import annotations

import aiohttp
import pytest
from aiogram import Bot
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest

from services.standin.client import StandInClient, StandInError
from services.standin.server import StandIn

pytestmark = pytest.mark.unit

GROUP = -4242


async def test_in_a_group_the_default_user_owns_it_and_others_are_members(
    standin: StandIn, bot: Bot
) -> None:
    standin.user_sends(GROUP, "hello", chat_type="group")
    owner = await bot.get_chat_member(GROUP, 1000)
    assert owner.status == ChatMemberStatus.CREATOR and owner.user.id == 1000
    other = await bot.get_chat_member(GROUP, 77)
    assert other.status == ChatMemberStatus.MEMBER and other.user.id == 77
    me = await bot.get_chat_member(GROUP, bot.id)
    assert me.status == ChatMemberStatus.ADMINISTRATOR and me.user.is_bot


async def test_a_test_sets_each_status_and_aiogram_reads_every_shape(
    standin: StandIn, bot: Bot
) -> None:
    for status in ("administrator", "member", "restricted", "left", "kicked", "creator"):
        standin.set_member(GROUP, 77, status)
        member = await bot.get_chat_member(GROUP, 77)
        assert member.status == status
    assert standin.state.members.of_chat(GROUP) == {77: "creator"}
    with pytest.raises(ValueError, match="status must be one of"):
        standin.set_member(GROUP, 77, "owner")


async def test_a_private_chat_has_its_user_as_a_member(bot: Bot) -> None:
    member = await bot.get_chat_member(555, 555)
    assert member.status == ChatMemberStatus.MEMBER


async def test_get_chat_member_without_a_user_is_a_bad_request(bot: Bot) -> None:
    async with aiohttp.ClientSession() as http:
        url = bot.session.api.api_url(token=bot.token, method="getChatMember")
        async with http.post(url, json={"chat_id": GROUP, "user_id": "x"}) as response:
            assert response.status == 400
            assert (await response.json())[
                "description"
            ] == "Bad Request: invalid user_id specified"
    with pytest.raises(TelegramBadRequest):
        await bot.get_chat_member("not-a-chat", 1)


async def test_the_control_api_sets_and_lists_statuses(standin: StandIn) -> None:
    async with StandInClient(standin.base_url) as client:
        await client.set_member(GROUP, 9, "administrator")
        assert await client.members(GROUP) == {"9": "administrator"}
        with pytest.raises(StandInError, match="400"):
            await client.set_member(GROUP, 9, "boss")
    assert standin.state.members.status(GROUP, "group", 9, 1000) == "administrator"


async def test_a_fault_answers_an_odd_success_after_doing_the_work(
    standin: StandIn, bot: Bot
) -> None:
    standin.add_fault(method="sendMessage", result=True)
    with pytest.raises(ClientDecodeError):  # plain aiogram cannot read it (the linker can)
        await bot.send_message(42, "hello")
    assert [m["text"] for m in standin.bot_messages(42)] == ["hello"]
    standin.add_fault(method="getChatMember", result={}, deliver=False)
    with pytest.raises(ClientDecodeError):
        await bot.get_chat_member(GROUP, 1)


async def test_a_fault_answers_a_body_that_is_not_json(standin: StandIn) -> None:
    standin.add_fault(method="*", raw_body="<html>bad gateway</html>")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{standin.base_url}/bot1:x/getMe") as response,
    ):
        assert response.status == 502
        assert await response.text() == "<html>bad gateway</html>"


async def test_a_message_on_behalf_of_a_chat(standin: StandIn) -> None:
    group = {"id": GROUP, "title": "Team"}
    update = standin.user_sends(GROUP, "/stop", chat_type="supergroup", sender_chat=group)
    message = update["message"]
    assert message["sender_chat"] == {"type": "supergroup", "id": GROUP, "title": "Team"}
    assert message["from"]["username"] == "GroupAnonymousBot"
    channel = {"id": -100555, "type": "channel", "title": "News"}
    async with StandInClient(standin.base_url) as client:
        update = await client.user_sends(GROUP, "/stop", sender_chat=channel)
        assert update["message"]["sender_chat"] == channel
        assert update["message"]["from"]["username"] == "Channel_Bot"
        with pytest.raises(StandInError, match="400"):
            await client.user_sends(GROUP, "/stop", sender_chat={"id": "x"})
