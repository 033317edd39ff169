"""Delivery at its ports, in memory: Telegram, the linker and the results' store are fakes
(tests/notifier/fakes.py); the chat lines, the rate limiter, the retry policy and the batching of
results are the real ones. Seconds, not minutes: what each answer of Telegram leads to."""

import asyncio
from datetime import UTC, datetime

import pytest

from services.notifier.config import ProcessorConfig
from services.notifier.delivery import Delivery
from services.notifier.planning import dedupe_key
from services.notifier.progress import ProgressWatch
from services.notifier.ratelimit import Limits, RateLimiter
from services.notifier.records import (
    DeliveryRow,
    DeliveryStatus,
    EditPlan,
    Outcome,
    Plan,
    SendPlan,
)
from services.notifier.results import Results
from services.notifier.retry import RetryPolicy
from services.notifier.telegram import Failure, SendError
from services.notifier.work import Item, Planned
from shared.contract import new_event
from tests.notifier.fakes import FakeTelegram, MemoryResults, RecordingLinker

pytestmark = pytest.mark.unit

CHAT = 4242
BUTTONS = [[{"text": "View post", "url": "https://example.com/p/1"}]]


class Rig:
    """A `Delivery` wired to fakes; `send` dispatches events as one planned batch."""

    def __init__(self, telegram: FakeTelegram | None = None, **options: int) -> None:
        self.telegram = telegram or FakeTelegram()
        self.linker = RecordingLinker()
        self.store = MemoryResults()
        self.limiter = RateLimiter(Limits(0, 0, 0))
        progress = ProgressWatch()
        config = ProcessorConfig(
            batch_wait=0.0,
            db_retry_max=0.1,
            retry=RetryPolicy(max_attempts=options.pop("max_attempts", 6), backoff_base=0.0),
            **options,
        )
        results = Results(self.store, self.limiter, progress, config)
        self.delivery = Delivery(
            self.telegram, self.limiter, self.linker, results, progress, b"k" * 32, config
        )
        self.rows = 0

    def item(self, text: str = "failed", user: str = "u1") -> Item:
        event = new_event("post_failure", user, {"platform": "x", "error": text})
        data = event.typed_data()
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        return Item(event, data, future, dedupe_key(event, data))

    def row(self, item: Item, handed: bool = False) -> DeliveryRow:
        self.rows += 1
        at = datetime.now(UTC) if handed else None
        return DeliveryRow(self.rows, item.dedupe_key, DeliveryStatus.SENDING, 0, at)

    def dispatch(self, items: list[Item], plans: dict[str, Plan], handed: bool = False) -> None:
        rows = {i.dedupe_key: self.row(i, handed) for i in items}
        self.delivery.dispatch(Planned(items, rows, plans))

    async def send(self, *items: Item, chat: int = CHAT) -> list[Outcome]:
        plans: dict[str, Plan] = {
            i.dedupe_key: SendPlan(chat, f"text of {i.event.event_id}", BUTTONS, "en")
            for i in items
        }
        self.dispatch(list(items), plans)
        return await outcomes(*items)


async def outcomes(*items: Item) -> list[Outcome]:
    return list(await asyncio.wait_for(asyncio.gather(*(i.future for i in items)), 5))


async def test_a_message_is_sent_marked_then_recorded():
    rig = Rig()
    item = rig.item()
    (outcome,) = await rig.send(item)
    assert (outcome.status, outcome.dead_letter) == (DeliveryStatus.SENT, None)
    (call,) = rig.telegram.calls
    assert (call.chat_id, call.text) == (CHAT, f"text of {item.event.event_id}")
    assert call.reply_markup is not None  # the buttons, signed for the chat
    assert rig.store.marks == [(1, True)]
    (result,) = rig.store.results
    assert (result.status, result.telegram_message_id, result.attempts, result.final) == (
        DeliveryStatus.SENT,
        outcome.telegram_message_id,
        1,
        True,
    )


async def test_a_429_pauses_its_chat_and_is_not_counted_as_an_attempt():
    pace = SendError(Failure.RETRY_AFTER, "Too Many Requests", 429, retry_after=0.01)
    rig = Rig(FakeTelegram(script=[pace, pace]))
    (outcome,) = await rig.send(rig.item())
    assert outcome.status == DeliveryStatus.SENT
    assert len(rig.telegram.calls) == 3
    assert rig.limiter.chat_paused_until(CHAT) > 0
    assert rig.store.results[0].attempts == 1
    # Written, refused (Telegram did not deliver it: ours to resend), written again.
    assert rig.store.marks == [(1, True), (1, False), (1, True), (1, False), (1, True)]


async def test_a_group_that_became_a_supergroup_is_followed_and_the_linker_told():
    moved = SendError(Failure.MIGRATED, "group upgraded", 400, migrate_to_chat_id=-1009)
    rig = Rig(FakeTelegram(script=[moved]))
    item = rig.item()
    (outcome,) = await rig.send(item, chat=-5)
    assert outcome.status == DeliveryStatus.SENT
    assert [c.chat_id for c in rig.telegram.calls] == [-5, -1009]
    assert rig.linker.migrated == [(item.event.user_id, -1009)]


async def test_a_chat_gone_is_undeliverable_and_the_linker_told():
    gone = SendError(Failure.CHAT_GONE, "Forbidden: bot was blocked by the user", 403)
    rig = Rig(FakeTelegram(script=[gone]))
    item = rig.item()
    (outcome,) = await rig.send(item)
    assert (outcome.status, outcome.dead_letter) == (DeliveryStatus.UNDELIVERABLE, None)
    assert rig.linker.gone == [(item.event.user_id, gone.description)]
    assert rig.store.results[0].final


async def test_transient_failures_are_dead_lettered_after_the_last_attempt():
    down = SendError(Failure.TRANSIENT, "Bad Gateway", 502)
    rig = Rig(FakeTelegram(script=[down] * 3), max_attempts=3)
    (outcome,) = await rig.send(rig.item())
    assert (outcome.status, outcome.dead_letter) == (DeliveryStatus.FAILED, "retries_exhausted")
    assert len(rig.telegram.calls) == 3
    (result,) = rig.store.results
    assert (result.attempts, result.final) == (3, False)  # tried again if it comes back


async def test_an_uncertain_send_is_never_repeated():
    timeout = SendError(Failure.UNCERTAIN, "no answer before the timeout")
    rig = Rig(FakeTelegram(script=[timeout]))
    (outcome,) = await rig.send(rig.item())
    assert outcome.status == DeliveryStatus.UNCERTAIN
    assert len(rig.telegram.calls) == 1
    assert rig.store.marks == [(1, True)]  # the mark stays: Telegram may have it


async def test_copies_in_one_batch_or_while_the_first_is_sent_are_not_sent_again():
    rig = Rig(FakeTelegram(hold=asyncio.Event()))
    first = rig.item()
    twin = _copy(first)
    plans: dict[str, Plan] = {first.dedupe_key: SendPlan(CHAT, "once", None, "en")}
    rig.dispatch([first, twin], plans)
    await asyncio.sleep(0.01)  # the first is with Telegram now
    late = _copy(first)
    rig.dispatch([late], plans)
    assert rig.telegram.hold is not None
    rig.telegram.hold.set()
    sent, in_batch, in_flight = await outcomes(first, twin, late)
    assert sent.status == DeliveryStatus.SENT
    assert (in_batch.status, in_batch.reason) == ("duplicate", "same event twice in one batch")
    assert in_flight.status == "duplicate"
    assert len(rig.telegram.calls) == 1


async def test_a_request_handed_over_before_a_crash_is_recorded_uncertain_not_resent():
    rig = Rig()
    item = rig.item()
    rig.dispatch([item], {item.dedupe_key: SendPlan(CHAT, "t", None, "en")}, handed=True)
    (outcome,) = await outcomes(item)
    assert outcome.status == DeliveryStatus.UNCERTAIN
    assert rig.telegram.calls == []
    assert rig.store.results[0].status == DeliveryStatus.UNCERTAIN


async def test_a_burst_to_one_chat_goes_out_as_one_digest():
    rig = Rig(digest_min=3)
    burst = [rig.item(f"#{i}") for i in range(4)]
    other = rig.item("elsewhere", user="u2")
    plans: dict[str, Plan] = {
        i.dedupe_key: SendPlan(CHAT, i.data.error, BUTTONS, "en") for i in burst
    }
    plans[other.dedupe_key] = SendPlan(CHAT + 1, "elsewhere", BUTTONS, "en")
    rig.dispatch([*burst, other], plans)
    results = await outcomes(*burst, other)
    digest, single = rig.telegram.calls
    assert digest.text.startswith("📬 4 new notifications") and digest.reply_markup is None
    assert [f"#{i}" in digest.text for i in range(4)] == [True] * 4
    assert single.text == "elsewhere"
    assert len({o.telegram_message_id for o in results[:4]}) == 1
    assert {o.status for o in results} == {DeliveryStatus.SENT}
    assert sorted(rig.store.marks) == [(1, True), (2, True), (3, True), (4, True), (5, True)]


async def test_an_edit_is_recorded_edited_and_a_moved_chat_skips_it():
    moved = SendError(Failure.MIGRATED, "group upgraded", 400, migrate_to_chat_id=-1009)
    rig = Rig(FakeTelegram(script=[None, moved]))
    edited, skipped = rig.item(), rig.item()
    rig.dispatch([edited], {edited.dedupe_key: EditPlan(-5, 77, "new counts", BUTTONS)})
    (outcome,) = await outcomes(edited)
    assert (outcome.status, outcome.telegram_message_id) == (DeliveryStatus.EDITED, 77)
    rig.dispatch([skipped], {skipped.dedupe_key: EditPlan(-5, 78, "new counts", BUTTONS)})
    (outcome,) = await outcomes(skipped)
    assert outcome.status == DeliveryStatus.SKIPPED
    assert outcome.reason is not None and outcome.reason.startswith("chat migrated")
    assert [(c.method, c.chat_id, c.message_id) for c in rig.telegram.calls] == [
        ("editMessageText", -5, 77),
        ("editMessageText", -5, 78),
    ]
    assert rig.linker.migrated == [(skipped.event.user_id, -1009)]
    assert rig.store.marks == []  # edits are idempotent: no hand-over marks


def _copy(item: Item) -> Item:
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    return Item(item.event, item.data, future, item.dedupe_key)
