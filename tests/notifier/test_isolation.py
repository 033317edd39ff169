"""One bad event never stalls or takes down the others: a batch that fails for a reason that is
not the database being unreachable is split until only the event at fault is dead-lettered; a
copy of an event being sent waits for it; a notifier that makes no progress says so."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet

from services.notifier.main import health_app
from shared.contract import DLQ_ERROR_HEADER, DLQ_REASON_HEADER, DailySummaryData, new_event
from shared.db import libpq_url
from tests.notifier.harness import Harness, running_notifier
from tests.support.ids import new_chat_id, new_user, new_users
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

KEY = Fernet.generate_key().decode()
RETIRED_KEY = Fernet.generate_key().decode()
UNLIMITED = {
    "standin_limits": False,
    "telegram_rate_global": 0,
    "telegram_rate_per_chat": 0,
    "telegram_rate_per_group_per_min": 0,
}
SUCCESS = {"platform": "instagram", "content": "fine", "likes": 1, "comments": 2}
FAILURE = {"platform": "instagram", "error": "Connection timeout"}


@contextlib.asynccontextmanager
async def deliveries_locked(database_url: str) -> AsyncIterator[None]:
    """Hold an exclusive lock on `deliveries`: a statement blocked behind it never errors, so
    the notifier's batch simply never finishes (a stall no exception reveals)."""
    connection = await psycopg.AsyncConnection.connect(libpq_url(database_url))
    async with connection, connection.transaction():
        await connection.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")
        yield


@contextlib.asynccontextmanager
async def with_a_victim(
    database_url: str, rabbitmq_url: str, count: int
) -> AsyncIterator[tuple[Harness, list[tuple[str, int]], str]]:
    """A notifier with chat-id encryption, `count` users linked, and one whose chat id was
    encrypted with a key the notifier no longer has (retired too early)."""
    async with running_notifier(
        database_url, rabbitmq_url, chat_id_encryption_key=KEY, **UNLIMITED
    ) as h:
        users = new_users(count)
        for user, chat in users:
            await h.link(user, chat)
        victim = new_user()
        await h.link(victim, Fernet(RETIRED_KEY.encode()).encrypt(b"123456789").decode())
        yield h, users, victim


async def test_an_undecryptable_chat_dead_letters_its_event_not_its_batch(
    database_url, rabbitmq_url
):
    async with with_a_victim(database_url, rabbitmq_url, 199) as (h, users, victim):
        events = [new_event("post_success", user, SUCCESS) for user, _ in users]
        events.insert(100, new_event("post_success", victim, SUCCESS))
        # Submitted in one tick: one batch of 200 (NOTIFIER_BATCH_SIZE), the victim in the middle.
        processor = h.notifier.processor
        futures = [processor.submit(e, e.typed_data()) for e in events]
        outcomes = await asyncio.wait_for(asyncio.gather(*futures), 60)

        dead = [(e, o) for e, o in zip(events, outcomes, strict=True) if o.dead_letter]
        assert [e.user_id for e, _ in dead] == [victim]
        ((_, outcome),) = dead
        assert outcome.dead_letter == "processing_error"
        assert "ChatIdError" in (outcome.reason or "")
        assert "not configured" in (outcome.reason or "")
        assert {o.status for e, o in zip(events, outcomes, strict=True) if e.user_id != victim} == {
            "sent"
        }
        for user, chat in users:
            assert len(h.texts(chat)) == 1, user


async def test_through_rabbitmq_the_event_at_fault_lands_in_the_dlq_with_its_reason(
    database_url, rabbitmq_url
):
    async with with_a_victim(database_url, rabbitmq_url, 40) as (h, users, victim):
        for user, _ in users[:20]:
            await h.publish("post_success", user, SUCCESS)
        bad = await h.publish("post_success", victim, SUCCESS)
        for user, _ in users[20:]:
            await h.publish("post_success", user, SUCCESS)

        for _, chat in users:
            await h.wait_texts(chat, 1, timeout=30)
        (message,) = await h.dead_letters(1)
        assert message.message_id == str(bad.event_id)
        headers = message.headers or {}
        assert headers[DLQ_REASON_HEADER] == "processing_error"
        assert "ChatIdError" in str(headers[DLQ_ERROR_HEADER])
        # The queue keeps moving: a good event published after it is delivered.
        late_user, late_chat = new_user(), new_chat_id()
        await h.link(late_user, late_chat)
        await h.publish("post_success", late_user, SUCCESS)
        await h.wait_texts(late_chat, 1)


async def test_an_event_the_code_cannot_handle_is_dead_lettered_alone(database_url, rabbitmq_url):
    """Defence in depth: were the contract to let through a zone ZoneInfo refuses (the 'Asia'
    stall: IsADirectoryError, an OSError once counted as 'database down'), only that event is
    dead-lettered and the batch goes on."""
    async with running_notifier(database_url, rabbitmq_url, **UNLIMITED) as h:
        users = new_users(20)
        for user, chat in users:
            await h.link(user, chat)
        good = [new_event("post_success", user, SUCCESS) for user, _ in users]
        bad = new_event("daily_summary", users[0][0], {"date": "2026-02-26"})
        unchecked = DailySummaryData.model_construct(
            date=bad.typed_data().date, timezone="Asia", resend=False, total_posts=None
        )
        processor = h.notifier.processor
        futures = [processor.submit(e, e.typed_data()) for e in good[:10]]
        futures.append(processor.submit(bad, unchecked))
        futures += [processor.submit(e, e.typed_data()) for e in good[10:]]
        outcomes = await asyncio.wait_for(asyncio.gather(*futures), 60)
        assert outcomes[10].dead_letter == "processing_error"
        assert "IsADirectoryError" in (outcomes[10].reason or "")
        assert [o.status for i, o in enumerate(outcomes) if i != 10] == ["sent"] * 20


async def test_a_copy_arriving_while_the_first_is_being_sent_is_not_sent_again(
    database_url, rabbitmq_url
):
    async with running_notifier(database_url, rabbitmq_url, **UNLIMITED) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        # Telegram takes a second to answer the first copy; the second arrives meanwhile.
        h.standin.add_fault(method="sendMessage", chat_id=chat, delay=1.0)
        event = new_event("post_success", user, SUCCESS)
        first = h.notifier.processor.submit(event, event.typed_data())
        await eventually(lambda: h.standin.stats["requests"].get("sendMessage"), what="a send")
        second = h.notifier.processor.submit(event, event.typed_data())
        outcomes = await asyncio.wait_for(asyncio.gather(first, second), 30)
        assert [o.status for o in outcomes] == ["sent", "duplicate"]
        assert len(h.texts(chat)) == 1


async def test_a_stalled_notifier_is_neither_ready_nor_live_and_recovers(
    database_url, rabbitmq_url
):
    async with running_notifier(
        database_url, rabbitmq_url, notifier_stall_seconds=1, **UNLIMITED
    ) as h:
        transport = httpx.ASGITransport(app=health_app(h.notifier))
        async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as client:
            assert (await client.get("/readyz")).status_code == 200
            user, chat = new_user(), new_chat_id()
            await h.link(user, chat)
            async with deliveries_locked(database_url):
                await h.publish("post_success", user, SUCCESS)

                async def stalled() -> httpx.Response | None:
                    response = await client.get("/readyz")
                    return response if response.status_code == 503 else None

                ready = await eventually(stalled, timeout=20, what="/readyz failing")
                assert ready.json()["checks"]["progress"].startswith("error")
                assert ready.json()["checks"]["database"] == "ok"
                live = await client.get("/healthz")
                assert live.status_code == 503 and live.json()["status"] == "stalled"
            # The lock is gone: the event goes out and the notifier is healthy again.
            await h.wait_texts(chat, 1)

            async def healthy() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually(healthy, what="/readyz passing again")
            assert (await client.get("/healthz")).status_code == 200


async def test_the_watchdog_flags_a_stall(database_url, rabbitmq_url):
    from services.notifier.main import watch_progress

    async with running_notifier(
        database_url, rabbitmq_url, notifier_stall_seconds=0.5, **UNLIMITED
    ) as h:
        watchdog = asyncio.create_task(watch_progress(h.notifier, every=0.1))
        try:
            user, chat = new_user(), new_chat_id()
            await h.link(user, chat)
            async with deliveries_locked(database_url):
                await h.publish("post_success", user, SUCCESS)
                await asyncio.wait_for(h.notifier.stalled.wait(), 20)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog


async def test_a_result_that_cannot_be_written_does_not_take_the_others_with_it(database_url):
    from services.notifier.records import DeliveryIntent, DeliveryResult, DeliveryStatus
    from services.notifier.store import NotifierStore, open_pool

    pool = open_pool(database_url)
    await pool.open()
    try:
        store = NotifierStore(pool)
        events = [new_event("post_success", new_user(), SUCCESS) for _ in range(3)]
        async with pool.connection() as conn, conn.transaction():
            rows = await store.begin_deliveries(
                conn,
                [
                    DeliveryIntent(
                        str(e.event_id),
                        e.event_id,
                        e.type.value,
                        e.user_id,
                        None,
                        DeliveryStatus.SENDING,
                    )
                    for e in events
                ],
            )
        results = [
            DeliveryResult(
                rows[str(e.event_id)].id,
                e.event_id,
                e.type.value,
                e.user_id,
                DeliveryStatus.SENT,
                7,
                # The middle one cannot be stored (attempts is a 32-bit column); the error texts
                # carry what PostgreSQL's text refuses, which is cleaned, not refused.
                "a\x00b\ud800",
                2**40 if i == 1 else 1,
                True,
            )
            for i, e in enumerate(events)
        ]
        await store.finish(results)
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT event_id, status, error FROM deliveries WHERE event_id = ANY(%s)",
                ([e.event_id for e in events],),
            )
            found = {row[0]: row[1:] for row in await cursor.fetchall()}
        assert found[events[0].event_id] == ("sent", "ab?")
        assert found[events[2].event_id] == ("sent", "ab?")
        assert found[events[1].event_id][0] == "sending"  # logged and left; the others written
    finally:
        await pool.close()


async def test_a_held_message_whose_chat_became_unreadable_fails_alone_and_sends_nothing_twice(
    database_url, rabbitmq_url
):
    """A release round where one user's chat id can no longer be decrypted (a key retired while
    the message waited for the end of quiet hours): that user's rows fail with the reason, the
    others go out once, and the next round sends nothing again."""
    from datetime import UTC, datetime, time

    from sqlalchemy import text

    night, morning = datetime(2026, 2, 26, 23, tzinfo=UTC), datetime(2026, 2, 27, 7, tzinfo=UTC)
    now = [night]
    quiet = {"quiet_start": time(22), "quiet_end": time(7), "timezone": "UTC"}
    async with running_notifier(
        database_url,
        rabbitmq_url,
        clock=lambda: now[0],
        chat_id_encryption_key=KEY,
        notifier_release_interval_seconds=3600,  # the test releases by hand
        **UNLIMITED,
    ) as h:
        (good, good_chat), (bad, bad_chat) = new_users(2)
        await h.link(good, good_chat, **quiet)
        await h.link(bad, bad_chat, **quiet)
        held = [await h.publish("post_failure", u, FAILURE) for u in (good, bad)]
        for event in held:
            await h.wait_delivery(event, "held")
        retired = Fernet(RETIRED_KEY.encode()).encrypt(str(bad_chat).encode()).decode()
        async with h.engine.begin() as conn:
            await conn.execute(
                text("UPDATE telegram_links SET chat_id = :c WHERE user_id = :u"),
                {"c": retired, "u": bad},
            )
        now[0] = morning
        assert await h.notifier.processor.release_held() == 2
        assert await h.notifier.processor.release_held() == 0
        good_row, bad_row = [await h.delivery(event) for event in held]
        assert good_row["status"] == "sent" and len(h.texts(good_chat)) == 1
        assert bad_row["status"] == "failed" and "ChatIdError" in bad_row["error"]
        assert h.texts(bad_chat) == []
