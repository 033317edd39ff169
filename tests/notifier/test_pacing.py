"""Limits that adapt, as pure logic on a fake clock: a 429 pauses its chat only, 429s across
chats lower the global rate (AIMD) and it converges on a lower hidden limit, edits have their
own budget, and sends are counted when Telegram counts them (not when their answer is back)."""

import pytest

from services.notifier.pacing import Aimd, RoundTrips, SlidingWindow
from services.notifier.ratelimit import Limits, RateLimiter

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_429_on_one_chat_pauses_that_chat_and_the_others_go_on():
    clock = Clock()
    limiter = RateLimiter(Limits(30, 1, 20), clock=clock)
    limiter.too_many(1, 5.0)
    assert limiter.next_allowed(1, 100.0) == 105.0
    assert limiter.next_allowed(2, 100.0) == 100.0
    assert limiter.rate.rate == 30  # one chat's 429 says nothing about the global rate
    assert limiter.paused_until == 105.0  # the stall watch still knows a pause runs


def test_without_adaptation_a_429_pauses_every_chat():
    limiter = RateLimiter(Limits(30, 1, 20, adaptive=False), clock=Clock())
    limiter.too_many(1, 5.0)
    assert limiter.next_allowed(2, 100.0) == 105.0


def test_429s_across_chats_lower_the_rate_once_per_overshoot():
    aimd = Aimd(30, factor=0.85, hold=1.0)
    assert not aimd.too_many(1, 10.0)  # one chat: could be its own limit
    assert aimd.too_many(2, 10.1)  # a second chat within the hold: the global limit
    assert aimd.rate == pytest.approx(25.5)
    for chat in range(3, 10):  # answers to requests sent at the old rate: no further decrease
        assert not aimd.too_many(chat, 10.5)
    assert aimd.rate == pytest.approx(25.5)
    assert not aimd.too_many(3, 11.2)
    assert aimd.too_many(4, 11.3)  # a new overshoot, after the hold
    assert aimd.rate == pytest.approx(25.5 * 0.85)
    assert aimd.decreases == 2


def test_the_rate_climbs_back_by_its_step_per_second_and_each_decrease_halves_the_step():
    aimd = Aimd(30, step=1.0, min_step=0.25)
    aimd.too_many(1, 0.0)
    aimd.too_many(2, 0.0)
    low = aimd.rate
    for _ in range(round(low)):  # about one second of grants at the rate
        aimd.sent_at_rate()
    assert aimd.rate == pytest.approx(low + 0.5, abs=0.05)  # step 1 halved by the decrease
    for t in (2.0, 4.0, 6.0):
        aimd.too_many(1, t)
        aimd.too_many(2, t)
    assert aimd._increase == 0.25  # never below the minimum step
    for _ in range(100_000):
        aimd.sent_at_rate()
    assert aimd.rate == 30  # never above the ceiling
    assert aimd._increase == 1.0  # reaching it restores the step


def test_the_rate_never_falls_below_its_floor():
    aimd = Aimd(30, floor=5)
    for t in range(100):
        aimd.too_many(1, 2.0 * t)
        aimd.too_many(2, 2.0 * t)
    assert aimd.rate == 5


def simulate(hidden: int, configured: int, seconds: float) -> tuple[list[float], list[float]]:
    """A greedy sender under `configured` against a server enforcing `hidden` per second; each
    message to a chat of its own, a refused one retried. Returns accepted and 429 instants."""
    clock = Clock(0.0)
    limiter = RateLimiter(Limits(configured, 1, 20, margin=0.0), clock=clock)
    server = SlidingWindow(hidden, 1.0)
    accepted: list[float] = []
    refused: list[float] = []
    chats = iter(range(1, 10**9))
    retry: list[tuple[float, int]] = []
    while clock.now < seconds:
        due = [r for r in retry if r[0] <= clock.now]
        chat = due[0][1] if due else next(chats)
        if due:
            retry.remove(due[0])
        clock.now = limiter.next_allowed(chat, clock.now)
        limiter.start(chat)
        if server.next_allowed(clock.now) > clock.now:
            refused.append(clock.now)
            limiter.too_many(chat, 1.0)
            retry.append((clock.now + 1.0, chat))
        else:
            server.record(clock.now)
            accepted.append(clock.now)
        clock.now += 0.0001
        limiter.finish(chat, clock.now)
    return accepted, refused


def test_against_a_lower_hidden_limit_the_rate_converges_and_429s_fall():
    accepted, refused = simulate(hidden=22, configured=30, seconds=120)
    late = [t for t in accepted if t >= 60]
    assert len(late) / 60 == pytest.approx(22, rel=0.10)
    first, second = (sum(1 for t in refused if a <= t < a + 60) for a in (0, 60))
    assert 0 < second < first
    assert len(refused) < 0.02 * len(accepted)


def test_at_the_real_limit_nothing_changes():
    accepted, refused = simulate(hidden=30, configured=30, seconds=30)
    assert refused == []
    assert len(accepted) >= 0.99 * 30 * 30


def test_edits_to_a_group_have_their_own_budget_lowered_by_their_429s():
    clock = Clock(0.0)
    limiter = RateLimiter(Limits(1000, 100, 20, edits_per_group_per_minute=20), clock=clock)
    for _ in range(20):
        assert limiter.next_allowed(-5, 0.0, edit=True) == 0.0
        limiter.start(-5, edit=True)
        limiter.finish(-5, 0.0, edit=True)
    assert limiter.next_allowed(-5, 0.0, edit=True) == pytest.approx(60.001)
    assert limiter.next_allowed(-5, 0.0) == 0.0  # messages to the group: their own budget
    assert limiter.next_allowed(-6, 0.0, edit=True) == 0.0  # another group: its own
    limiter.too_many(-6, 30.0, edit=True)
    assert limiter.edit_rate.rate == pytest.approx(17)  # one group's edit 429 is enough
    assert limiter.rate.rate == 1000  # the global rate is not the edits' to lower
    assert limiter.next_allowed(-6, 0.0, edit=True) == 30.0


def test_a_send_is_counted_when_it_reaches_telegram_not_when_its_answer_is_back():
    """80 ms round trips at 1000/s: counting until the answer costs 80 ms a window."""
    for count_at, opens in (("arrival", 1.0), ("completion", 1.08)):
        clock = Clock(0.0)
        limiter = RateLimiter(Limits(1000, 0, 0, margin=0.0, count_at=count_at), clock=clock)
        for i in range(1000):
            clock.now = i / 1000
            limiter.start(i)
        for i in range(1000):
            clock.now = i / 1000 + 0.08
            limiter.finish(i, clock.now)
        assert limiter.next_allowed(5000, 0.9995) == pytest.approx(opens, abs=0.002)


def test_round_trips_give_the_one_way_delay_and_each_answers_lateness():
    trips = RoundTrips()
    for i in range(100):
        trips.add(0.080 + (i % 10) / 1000)  # 80 to 89 ms
    assert trips.one_way == pytest.approx(0.040)
    assert trips.add(0.089) == pytest.approx(0.009)  # 9 ms slower than the fastest
    assert trips.add(0.070) == 0.0  # a faster one is the new shortest
    assert trips.one_way == pytest.approx(0.035)


def test_a_send_answered_late_is_counted_when_it_can_have_arrived():
    clock = Clock(0.0)
    limiter = RateLimiter(Limits(2, 0, 0, margin=0.0), clock=clock)
    for i in range(64):  # steady 80 ms round trips
        clock.now = i * 0.5
        limiter.start(i)
        limiter.finish(i, clock.now + 0.08)
    clock.now = 100.0
    limiter.start(1)
    limiter.start(2)
    limiter.finish(1, 100.08)
    limiter.finish(2, 100.38)  # 300 ms late: it may have reached Telegram up to then
    clock.now = 101.0
    assert limiter.next_allowed(3, 101.0) == 101.0  # the on-time send's place is free
    limiter.start(3)
    assert limiter.next_allowed(4, 101.0) == pytest.approx(101.3)  # the late one's, later


def test_a_send_still_unanswered_when_its_window_turns_keeps_counting():
    clock = Clock(0.0)
    limiter = RateLimiter(Limits(2, 0, 0, margin=0.0), clock=clock)
    limiter.start(1)
    limiter.start(2)
    assert limiter.next_allowed(3, 1.5) == float("inf")  # both may still be on their way
    clock.now = 1.6
    limiter.finish(1, 1.6)
    assert limiter.next_allowed(3, 1.6) == 1.6


def test_sends_answered_before_the_shortest_round_trip_fell_are_moved_by_the_fall():
    """The first answers are slow (cold connections, a burst queued): lateness measured from
    their shortest is too small once faster answers show the real one, and a send one window
    later would reach Telegram while they still count there (the 429 at 80 ms)."""
    clock = Clock(0.0)
    limiter = RateLimiter(Limits(2, 0, 0, margin=0.0), clock=clock)
    limiter.start(1)  # granted at 0.0, answered 200 ms later: the shortest so far
    limiter.finish(1, 0.2)
    clock.now = 0.5
    limiter.start(2)
    limiter.finish(2, 0.52)  # 20 ms: the first took 180 ms longer than a send needs
    assert limiter.trips.shortest == pytest.approx(0.02)
    assert limiter.next_allowed(3, 1.0) == pytest.approx(1.18)  # 1.0 if it stayed at its grant


def test_a_send_answered_after_its_window_turned_counts_where_it_can_have_arrived():
    clock = Clock(0.0)
    limiter = RateLimiter(Limits(1, 0, 0, margin=0.0), clock=clock)
    limiter.start(1)
    limiter.finish(1, 0.01)  # a 10 ms round trip
    clock.now = 1.0
    limiter.start(2)
    assert limiter.next_allowed(3, 2.4) == float("inf")  # unanswered: it counts as now
    limiter.finish(2, 2.5)  # 1.5 s: it may have reached Telegram as late as 2.49
    assert limiter.next_allowed(3, 2.5) == pytest.approx(3.49)


def test_round_trips_say_how_much_the_shortest_fell():
    trips = RoundTrips()
    trips.add(0.2)
    assert trips.dropped == 0.0  # the first sets it
    trips.add(0.3)
    assert trips.dropped == 0.0
    trips.add(0.05)
    assert trips.dropped == pytest.approx(0.15)
    trips.add(0.06)
    assert trips.dropped == 0.0


def test_the_shortest_round_trip_is_the_last_minutes_not_the_last_answers():
    trips = RoundTrips(horizon=60.0)
    trips.add(0.08, at=0.0)
    for i in range(5000):  # a busy moment: thousands of slow answers within seconds
        assert trips.add(0.3, at=1.0 + i / 1000) == pytest.approx(0.22)
    assert trips.shortest == pytest.approx(0.08)
    trips.add(0.3, at=61.0)  # a minute on, the path may really have got slower
    assert trips.shortest == pytest.approx(0.3)
