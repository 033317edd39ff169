"""`sns-telegram dlq` against real RabbitMQ: list/show leave messages, replay never loses one."""

import asyncio
import uuid

import aio_pika
import pytest

from services.cli import main
from services.linker.events import LINKER_DLQ
from services.ops.amqp import OpsError
from services.ops.dlq import browse, find, purge, replay
from services.ops.dlq_cli import print_letter, print_listing, run_purge, run_replay
from services.ops.letters import Selection
from shared.contract import (
    DLX_EXCHANGE,
    EXCHANGE,
    INTERNAL_EXCHANGE,
    LINKER_QUEUE,
    NOTIFIER_DLQ,
    NOTIFIER_QUEUE,
    parse_event,
)
from tests.ops.helpers import (
    dead_letter,
    dead_letter_event,
    declare_topology,
    drain,
    eventually,
    observe,
    queue_size,
    recording_console,
    sample_event,
    wait_size,
)

pytestmark = pytest.mark.integration

DEAD_LETTER_HEADERS = {
    "x-dlq-reason",
    "x-dlq-error",
    "x-original-routing-key",
    "x-dead-lettered-at",
}


@pytest.fixture
async def url(rabbitmq_url):
    await declare_topology(rabbitmq_url)
    return rabbitmq_url


async def three_dead_letters(url):
    """A blocked-chat post_success, an invalid post_failure body, a retries_exhausted one."""
    blocked = await dead_letter_event(
        url, sample_event("post_success"), extra_headers={"x-request-id": "req-1"}
    )
    invalid_id = str(uuid.uuid4())
    await dead_letter(
        url,
        b'{"event_id": "' + invalid_id.encode() + b'", "type": "post_failure"',
        routing_key="post_failure",
        message_id=invalid_id,
        reason="invalid",
        error="body is not valid JSON: Expecting ',' delimiter: line 1 column 62 (char 61)",
    )
    exhausted = await dead_letter_event(
        url, sample_event("post_failure"), reason="retries_exhausted", error="HTTP 502 " * 40
    )
    return str(blocked.event_id), invalid_id, str(exhausted.event_id)


async def test_list_shows_every_message_and_leaves_them_in_order(url):
    blocked, invalid, exhausted = await three_dead_letters(url)

    listing = await browse(url, NOTIFIER_DLQ)

    assert listing.total == 3
    assert [letter.event_id for letter in listing.letters] == [blocked, invalid, exhausted]
    assert [letter.reason for letter in listing.letters] == [
        "undeliverable",
        "invalid",
        "retries_exhausted",
    ]
    assert [letter.valid for letter in listing.letters] == [True, False, True]
    console, printed = recording_console()
    print_listing(listing, console)
    table = printed()
    for text in (blocked, invalid, exhausted, "undeliverable", "Forbidden: bot was blocked"):
        assert text in table
    assert "HTTP 502 HTTP 502" in table and "HTTP 502 " * 40 not in table  # shortened
    assert "by reason: " in table
    # Nothing was consumed, and the order is kept.
    await wait_size(url, NOTIFIER_DLQ, 3)
    again = await browse(url, NOTIFIER_DLQ)
    assert [letter.event_id for letter in again.letters] == [blocked, invalid, exhausted]
    assert again.letters[0].deliveries == listing.letters[0].deliveries  # a look is no delivery

    def kept(headers):
        return {k: v for k, v in headers.items() if k != "x-delivery-count"}

    assert kept(again.letters[0].headers) == kept(listing.letters[0].headers)  # reasons and all


async def test_looking_at_a_dead_letter_never_counts_against_a_delivery_limit(rabbitmq_url):
    """RabbitMQ 4 gives every quorum queue a delivery limit (20 by default): if each look
    counted as a delivery, looking at a dead letter often enough would drop it. Here the DLQ
    allows 2 deliveries, and the letter is looked at 6 times."""
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        dlx = await channel.declare_exchange(
            DLX_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dlq = await channel.declare_queue(
            NOTIFIER_DLQ,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-delivery-limit": 2},
        )
        await dlq.bind(dlx, routing_key="post_failure")
    event = await dead_letter_event(rabbitmq_url, sample_event("post_failure"))
    for _ in range(3):
        assert [
            letter.event_id for letter in (await browse(rabbitmq_url, NOTIFIER_DLQ)).letters
        ] == [str(event.event_id)]
        assert (await find(rabbitmq_url, NOTIFIER_DLQ, "1")).event_id == str(event.event_id)
    await wait_size(rabbitmq_url, NOTIFIER_DLQ, 1)


async def test_list_with_a_limit_reads_only_the_head(url):
    ids = await three_dead_letters(url)
    listing = await browse(url, NOTIFIER_DLQ, limit=2)
    assert [letter.event_id for letter in listing.letters] == list(ids[:2])
    console, printed = recording_console()
    print_listing(listing, console)
    assert "(1 more: use --limit)" in printed()
    await wait_size(url, NOTIFIER_DLQ, 3)


async def test_show_finds_by_id_prefix_or_position_and_prints_everything(url):
    blocked, invalid, _ = await three_dead_letters(url)

    by_id = await find(url, NOTIFIER_DLQ, blocked)
    by_prefix = await find(url, NOTIFIER_DLQ, invalid[:8])
    by_position = await find(url, NOTIFIER_DLQ, "2")

    assert by_id.event_id == blocked
    assert by_prefix.event_id == invalid == by_position.event_id
    console, printed = recording_console()
    print_letter(by_id, NOTIFIER_DLQ, console)
    shown = printed()
    for text in (
        "x-dlq-reason",
        "undeliverable",
        "x-original-routing-key",
        "x-request-id",
        "req-1",
        "application/json",
        '"platform": "instagram"',  # pretty JSON, one field per line
        "replays to",
    ):
        assert text in shown
    console, printed = recording_console()
    print_letter(by_prefix, NOTIFIER_DLQ, console)
    assert "the body is not valid JSON" in printed()
    with pytest.raises(OpsError, match="no message with id"):
        await find(url, NOTIFIER_DLQ, str(uuid.uuid4()))
    with pytest.raises(OpsError, match="no position 9"):
        await find(url, NOTIFIER_DLQ, "9")
    await wait_size(url, NOTIFIER_DLQ, 3)


async def test_show_reads_a_number_that_is_no_position_as_an_id_prefix(url):
    """An event id may start with eight digits: `dlq show 12345678` finds it, not 'no position'."""
    event = sample_event().model_copy(update={"event_id": uuid.UUID(DIGITS_FIRST)})
    await dead_letter_event(url, event)
    await wait_size(url, NOTIFIER_DLQ, 1)

    assert (await find(url, NOTIFIER_DLQ, "12345678")).event_id == DIGITS_FIRST
    assert (await find(url, NOTIFIER_DLQ, "1")).event_id == DIGITS_FIRST  # position 1
    with pytest.raises(OpsError, match="no position 87654321"):
        await find(url, NOTIFIER_DLQ, "87654321")
    await wait_size(url, NOTIFIER_DLQ, 1)


DIGITS_FIRST = "12345678-1234-4234-8234-123456789012"


async def test_replay_republishes_with_clean_headers_and_removes_from_the_dlq(url):
    observer = await observe(url, "post_success", "post_failure")
    blocked, invalid, exhausted = await three_dead_letters(url)

    result = await replay(url, NOTIFIER_DLQ, Selection())

    assert [letter.event_id for letter in result.replayed] == [blocked, invalid, exhausted]
    assert result.failed == []
    assert await queue_size(url, NOTIFIER_DLQ) == 0
    received = await drain(url, observer)
    assert [m.message_id for m in received] == [blocked, invalid, exhausted]
    assert [m.routing_key for m in received] == ["post_success", "post_failure", "post_failure"]
    for message in received:
        assert message.exchange == EXCHANGE
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type == "application/json"
        assert not DEAD_LETTER_HEADERS & set(message.headers)
        assert "x-death" not in message.headers
    assert received[0].headers == {"x-request-id": "req-1"}
    event, _ = parse_event(received[0].body)
    assert str(event.event_id) == blocked
    # The invalid body went back byte for byte: the operator may have fixed the consumer.
    assert received[1].body.startswith(b'{"event_id": "' + invalid.encode())
    # And the notifier's own queue got them too.
    assert await queue_size(url, NOTIFIER_QUEUE) == 3


async def test_replay_only_valid_skips_invalid_bodies(url):
    observer = await observe(url, "#")
    blocked, invalid, exhausted = await three_dead_letters(url)

    result = await replay(url, NOTIFIER_DLQ, Selection(only_valid=True))

    assert [letter.event_id for letter in result.replayed] == [blocked, exhausted]
    assert [m.message_id for m in await drain(url, observer)] == [blocked, exhausted]
    await wait_size(url, NOTIFIER_DLQ, 1)
    assert [letter.event_id for letter in (await browse(url, NOTIFIER_DLQ)).letters] == [invalid]


async def test_replay_filters_by_id_reason_and_limit(url):
    observer = await observe(url, "#")
    blocked, invalid, exhausted = await three_dead_letters(url)

    by_id = await replay(url, NOTIFIER_DLQ, Selection(ids=frozenset({exhausted})))
    await wait_size(url, NOTIFIER_DLQ, 2)
    by_reason = await replay(url, NOTIFIER_DLQ, Selection(reason="invalid"))
    await wait_size(url, NOTIFIER_DLQ, 1)
    limited = await replay(url, NOTIFIER_DLQ, Selection(), limit=0)

    assert [letter.event_id for letter in by_id.replayed] == [exhausted]
    assert [letter.event_id for letter in by_reason.replayed] == [invalid]
    assert limited.replayed == []
    assert [m.message_id for m in await drain(url, observer)] == [exhausted, invalid]
    await wait_size(url, NOTIFIER_DLQ, 1)
    assert [letter.event_id for letter in (await browse(url, NOTIFIER_DLQ)).letters] == [blocked]


async def test_dry_run_changes_nothing(url):
    observer = await observe(url, "#")
    ids = await three_dead_letters(url)
    console, printed = recording_console()

    code = await asyncio.to_thread(
        run_replay, url, NOTIFIER_DLQ, Selection(), dry_run=True, console=console
    )

    assert code == 0
    assert "dry run: would replay 3 of 3" in printed()
    assert all(event_id in printed() for event_id in ids)
    assert await queue_size(url, observer) == 0
    await wait_size(url, NOTIFIER_DLQ, 3)


async def test_an_unroutable_replay_stays_in_the_dlq_and_the_command_fails(url):
    # Nothing is bound to post_failure any more (say, the notifier queue was re-declared wrong).
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(NOTIFIER_QUEUE)
        await queue.unbind(EXCHANGE, "post_failure")
    observer = await observe(url, "post_success")
    blocked, invalid, exhausted = await three_dead_letters(url)
    console, printed = recording_console()
    errors, error_text = recording_console()

    code = await asyncio.to_thread(
        run_replay, url, NOTIFIER_DLQ, Selection(), console=console, errors=errors
    )

    assert code == 1
    assert "replayed 1 of 3" in printed()
    assert f"left in {NOTIFIER_DLQ}: {invalid}" in error_text()
    assert "not routed: no queue is bound to 'post_failure'" in error_text()
    assert [m.message_id for m in await drain(url, observer)] == [blocked]
    await wait_size(url, NOTIFIER_DLQ, 2)
    left = (await browse(url, NOTIFIER_DLQ)).letters
    assert [letter.event_id for letter in left] == [invalid, exhausted]
    assert left[0].reason == "invalid"  # still marked as dead-lettered


async def test_purge_with_a_reason_removes_only_the_matching_messages(url):
    blocked, _, exhausted = await three_dead_letters(url)
    asked = []

    declined = await purge(
        url, NOTIFIER_DLQ, Selection(reason="invalid"), confirm=lambda n, r: asked.append(n)
    )
    assert asked == [1] and declined.deleted == 0
    await wait_size(url, NOTIFIER_DLQ, 3)

    done = await purge(url, NOTIFIER_DLQ, Selection(reason="invalid"), confirm=lambda n, r: True)

    assert done.deleted == 1 and done.matched == {"invalid": 1}
    await wait_size(url, NOTIFIER_DLQ, 2)
    left = (await browse(url, NOTIFIER_DLQ)).letters
    assert [letter.event_id for letter in left] == [blocked, exhausted]


async def test_purge_asks_and_a_no_deletes_nothing(url):
    await three_dead_letters(url)
    questions = []
    console, _ = recording_console()
    errors, error_text = recording_console()

    def ask(question):
        questions.append(question)
        return False

    code = await asyncio.to_thread(
        run_purge, url, NOTIFIER_DLQ, Selection(), ask=ask, console=console, errors=errors
    )

    assert code == 1
    assert questions == [
        "Delete 3 message(s) (undeliverable 1, invalid 1, retries_exhausted 1) "
        f"from {NOTIFIER_DLQ} for good?"
    ]
    assert "nothing was deleted" in error_text()
    await wait_size(url, NOTIFIER_DLQ, 3)


async def test_the_linker_dlq_rabbitmq_dead_letters_are_replayed_to_their_routing_key(
    rabbitmq_url,
):
    await declare_topology(rabbitmq_url, linker=True)
    event = sample_event("post_success")
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(INTERNAL_EXCHANGE)
        body = b'{"event_id": "' + str(event.event_id).encode() + b'", "type": "telegram.blocked"}'
        await exchange.publish(
            aio_pika.Message(
                body, message_id=str(event.event_id), headers={"x-sns-signature": "v1=kept"}
            ),
            routing_key="telegram.blocked",
        )
        # The linker rejects an invalid event: RabbitMQ dead-letters it with x-death.
        queue = await channel.get_queue(LINKER_QUEUE)
        message = await eventually(lambda: queue.get(fail=False))
        await message.reject(requeue=False)
    await wait_size(rabbitmq_url, LINKER_DLQ, 1)

    [letter] = (await browse(rabbitmq_url, LINKER_DLQ)).letters
    assert letter.reason == "rejected"
    assert letter.routing_key == "telegram.blocked"
    assert letter.event_id == str(event.event_id)
    assert "x-death" in letter.headers
    await wait_size(rabbitmq_url, LINKER_DLQ, 1)

    result = await replay(rabbitmq_url, LINKER_DLQ, Selection())

    assert len(result.replayed) == 1
    assert await queue_size(rabbitmq_url, LINKER_DLQ) == 0
    [back] = await drain(rabbitmq_url, LINKER_QUEUE)
    assert back.body == body
    assert back.routing_key == "telegram.blocked"
    assert back.exchange == INTERNAL_EXCHANGE  # internal events go back where only we write
    assert back.headers["x-sns-signature"] == "v1=kept"
    assert not any(key.startswith(("x-death", "x-first-death")) for key in back.headers)


async def run_cli(monkeypatch, url, *argv):
    monkeypatch.setenv("RABBITMQ_URL", url)
    monkeypatch.setenv("COLUMNS", "220")
    return await asyncio.to_thread(main, list(argv))


async def test_the_cli_lists_replays_and_purges(url, monkeypatch, capsys):
    blocked, invalid, exhausted = await three_dead_letters(url)

    assert await run_cli(monkeypatch, url, "dlq", "list") == 0
    listed = capsys.readouterr().out
    assert all(event_id in listed for event_id in (blocked, invalid, exhausted))
    await wait_size(url, NOTIFIER_DLQ, 3)

    assert await run_cli(monkeypatch, url, "dlq", "show", blocked[:8]) == 0
    assert '"platform": "instagram"' in capsys.readouterr().out
    await wait_size(url, NOTIFIER_DLQ, 3)

    assert await run_cli(monkeypatch, url, "dlq", "replay", "--id", blocked) == 0
    assert "replayed 1 of 3" in capsys.readouterr().out
    await wait_size(url, NOTIFIER_DLQ, 2)

    assert await run_cli(monkeypatch, url, "dlq", "purge", "--reason", "invalid", "--yes") == 0
    assert f"deleted 1 message(s) from {NOTIFIER_DLQ}" in capsys.readouterr().out
    await wait_size(url, NOTIFIER_DLQ, 1)

    assert await run_cli(monkeypatch, url, "dlq", "purge", "--reason", "nope", "--yes") == 0
    assert "nothing to delete" in capsys.readouterr().out


async def test_the_cli_reports_a_missing_queue(rabbitmq_url, monkeypatch, capsys):
    assert await run_cli(monkeypatch, rabbitmq_url, "dlq", "list") == 1
    err = capsys.readouterr().err
    assert f"error: queue '{NOTIFIER_DLQ}' does not exist" in " ".join(err.split())


async def test_the_cli_reports_an_unreachable_broker(monkeypatch, capsys):
    url = "amqp://guest:secret@127.0.0.1:1/"
    assert await run_cli(monkeypatch, url, "dlq", "replay", "--dry-run") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/" in err
    assert "secret" not in err


async def test_the_cli_refuses_a_queue_that_is_not_a_dlq(capsys):
    with pytest.raises(SystemExit) as exit_:
        await asyncio.to_thread(main, ["dlq", "replay", "--queue", NOTIFIER_QUEUE])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
