"""The rate-limit arithmetic with a fixed clock: never over the limit, no idle budget."""

import asyncio

import pytest

from services.notifier.ordering import ChatSequencer
from services.notifier.ratelimit import Limits, RateLimiter, SlidingWindow

pytestmark = pytest.mark.unit


def test_sliding_window_allows_limit_then_waits_for_the_oldest_to_expire():
    window = SlidingWindow(3, 1.0)
    for t in (0.0, 0.1, 0.2):
        assert window.next_allowed(t) == t
        window.record(t)
    assert window.next_allowed(0.3) == pytest.approx(1.0)
    assert window.next_allowed(1.05) == 1.05
    window.record(1.05)
    assert window.next_allowed(1.06) == pytest.approx(1.1)


def schedule(limiter: RateLimiter, chats: list[int]) -> list[float]:
    """Greedy send times for messages to `chats` (in order), as acquire() would produce."""
    now, times = 0.0, []
    for chat in chats:
        at = limiter.next_allowed(chat, now)
        limiter.record(chat, at)
        times.append(at)
        now = at
    return times


def max_in_window(times: list[float], period: float) -> int:
    return max(sum(1 for t in times[i:] if t - start < period) for i, start in enumerate(times))


def test_global_limit_holds_in_every_window_and_is_used_fully():
    limiter = RateLimiter(Limits(30, 1, 20, margin=0.0))
    times = schedule(limiter, list(range(1, 301)))  # 300 distinct chats
    assert max_in_window(times, 1.0) == 30
    assert times[-1] == pytest.approx(9.0)  # 300 messages at 30/s: the last one at t = 9 s


def test_per_chat_limit_spaces_one_chat_while_others_proceed():
    limiter = RateLimiter(Limits(30, 1, 20, margin=0.0))
    times = schedule(limiter, [7, 7, 7])
    assert times == [0.0, 1.0, 2.0]
    assert limiter.next_allowed(8, 2.0) == 2.0


def test_groups_get_twenty_a_minute():
    limiter = RateLimiter(Limits(30, 100, 20, margin=0.0))
    times = schedule(limiter, [-5] * 21)
    assert max_in_window(times, 60.0) == 20
    assert times[20] == pytest.approx(60.0)


def test_a_429_pauses_every_chat():
    clock = [100.0]
    limiter = RateLimiter(Limits(30, 1, 20), clock=lambda: clock[0])
    limiter.pause(5)
    assert limiter.next_allowed(1, 100.0) == 105.0
    assert limiter.next_allowed(2, 104.9) == 105.0


def test_zero_means_unlimited_and_fractional_rates_space_messages():
    unlimited = RateLimiter(Limits(0, 0, 0))
    assert schedule(unlimited, [1] * 1000)[-1] == 0.0
    half = RateLimiter(Limits(0, 0.5, 0, margin=0.0))
    assert schedule(half, [1, 1, 1]) == [0.0, 2.0, 4.0]


async def test_sequencer_releases_each_chat_in_arrival_order():
    sequencer = ChatSequencer()
    order: list[str] = []
    tickets = [(name, sequencer.enter(1, name)) for name in "abc"]
    other = sequencer.enter(2)
    assert other.done()
    assert sequencer.behind(1, tickets[0][1]) == ["b", "c"]  # who waits behind the head
    assert sequencer.behind(1, other) == []

    async def run(name, ticket):
        await ticket
        order.append(name)
        await asyncio.sleep(0)
        sequencer.leave(1, ticket)

    await asyncio.gather(*(run(n, t) for n, t in reversed(tickets)))
    assert order == ["a", "b", "c"]
    assert sequencer.waiting(1) == 0


async def test_queued_senders_are_granted_at_the_limit_and_in_order_of_their_chats_turn():
    limiter = RateLimiter(Limits(50, 1, 20, margin=0.0))
    granted: list[tuple[float, int]] = []

    async def send(chat: int) -> None:
        await limiter.acquire(chat)
        granted.append((asyncio.get_running_loop().time(), chat))
        limiter.release(chat)

    # 100 chats (two messages each would break the per-chat limit, so one each) plus a second
    # message to chat 1, which must wait its chat's second without holding up the others.
    await asyncio.gather(*(send(c) for c in [*range(1, 101), 1]))
    times = [t for t, _ in granted]
    assert len(granted) == 101
    assert max_in_window(times, 1.0) <= 50
    assert times[-1] - times[0] < 2.5  # the budget is used, not left idle
    chat1 = [t for t, c in granted if c == 1]
    assert chat1[1] - chat1[0] >= 1.0
    assert [c for _, c in granted].index(1) == 0


async def test_a_cancelled_waiter_gives_back_nothing_and_blocks_nobody():
    limiter = RateLimiter(Limits(1, 0, 0, margin=0.0))
    await limiter.acquire(1)
    waiting = asyncio.create_task(limiter.acquire(2))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    limiter.release(1)
    assert await asyncio.wait_for(limiter.acquire(3), 2.0) >= 0.5  # after the first's second
    limiter.release(3)
    assert limiter._global is not None and limiter._global.in_flight == 0


async def test_exposed_grants_wait_for_a_hand_over_mark_without_costing_budget():
    limiter = RateLimiter(Limits(30, 0, 0, margin=0.0), exposure=1)
    await limiter.acquire(1, expose=True)
    second = asyncio.create_task(limiter.acquire(2, expose=True))
    edit = asyncio.create_task(limiter.acquire(3))  # not exposed: an edit needs no mark
    await asyncio.sleep(0.05)
    assert not second.done()  # the first request's mark is not committed yet
    limiter.unexpose()
    await asyncio.wait_for(second, 1.0)
    await asyncio.wait_for(edit, 1.0)
    for chat in (1, 2, 3):
        limiter.release(chat)
    limiter.unexpose()
    assert limiter._exposed == 0


def test_exposure_bound_scales_with_the_rate():
    from services.notifier.processor import exposure_bound

    assert exposure_bound(30) == 1  # Telegram's default: a crash repeats at most one message
    assert exposure_bound(1000) == 30  # paid broadcast: 30 ms of sending
    assert exposure_bound(0) == 0  # unlimited: no bound
