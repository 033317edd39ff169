"""The notifier's database work, every statement on its tables in this one module (hence its
length; the delivery log's side notes are `notes.py`'s): one short transaction per batch of
events, never per message.

Plain psycopg 3 (no ORM) on the hot path: every statement takes arrays and `unnest`s them, so a
batch of any size is a fixed handful of statements.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.common.platforms import platform_key
from services.notifier.records import (
    ERROR_CHARS,
    FINAL_STATUSES,
    ActivityRow,
    DeliveryIntent,
    DeliveryResult,
    DeliveryRow,
    DeliveryStatus,
    HeldDelivery,
    Hold,
    Link,
    MetricsUpdate,
    PostMessage,
    SummaryWindow,
    storable,
)
from services.notifier.render import DailyReport, PlatformTotals
from shared.contract import EventType
from shared.db import is_transient, libpq_url

__all__ = ["NotifierStore", "SummaryWindow", "open_pool"]

log = logging.getLogger(__name__)

# Statuses in the statements below are the enum's values, spelled out as literals so PostgreSQL
# matches the partial index on held deliveries; parameters pass members (psycopg dumps a StrEnum
# as its value).
SENDING, HELD, SENT = DeliveryStatus.SENDING, DeliveryStatus.HELD, DeliveryStatus.SENT
_STATUS = {status.value: status for status in DeliveryStatus}
"""A stored status as its member (a dictionary lookup: `DeliveryStatus(value)` costs 20 times it,
on every delivery row)."""

_PROCESSED = "SELECT event_id FROM processed_events WHERE event_id = ANY(%s)"

_ACTIVITY = """
INSERT INTO activity (event_id, user_id, type, occurred_at, platform, likes, comments, details,
                      post_id)
SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::timestamptz[], %s::text[],
                     %s::int[], %s::int[], %s::jsonb[], %s::text[])
ON CONFLICT (event_id) DO NOTHING
"""

_LINKS = """
SELECT user_id, chat_id, enabled, muted_types, language, timezone, quiet_start, quiet_end,
       silent_types, quiet_mode, link_previews, message_thread_id, post_images
FROM telegram_links WHERE user_id = ANY(%s)
"""

_REPORTS = """
SELECT v.key, a.type, coalesce(a.platform, ''), count(*), coalesce(sum(a.likes + a.comments), 0)
FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[])
     AS v(key, user_id, start_at, end_at)
JOIN activity a ON a.user_id = v.user_id AND a.occurred_at >= v.start_at
               AND a.occurred_at < v.end_at
WHERE a.type IN ('post_success', 'post_failure')
GROUP BY 1, 2, 3
"""

_BEGIN_DELIVERIES = """
INSERT INTO deliveries AS d (dedupe_key, event_id, event_type, user_id, chat_ref, status,
                             attempts, created_at, updated_at, occurred_at, preview, reason)
SELECT k, e, t, u, c, s, 0, now(), now(), o, p, r
FROM unnest(%s::text[], %s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::timestamptz[], %s::text[], %s::text[])
     AS v(k, e, t, u, c, s, o, p, r)
ON CONFLICT (dedupe_key) DO UPDATE SET
    status = CASE WHEN d.status = ANY(%s) THEN d.status ELSE excluded.status END,
    chat_ref = CASE WHEN d.status = ANY(%s) THEN d.chat_ref ELSE excluded.chat_ref END,
    preview = coalesce(excluded.preview, d.preview),
    reason = CASE WHEN d.status = ANY(%s) THEN d.reason ELSE excluded.reason END,
    updated_at = now()
RETURNING id, dedupe_key, status, attempts, handed_at
"""

# `handed_at` changes only on rows still `sending`; the delivery log's `handed_over_at` is kept
# even when the answer was recorded first (a mark is written on its own connection, so it can
# arrive after the result).
_MARK_HANDED = f"""
UPDATE deliveries AS d
SET handed_at = CASE WHEN d.status <> '{SENDING}' THEN d.handed_at
                     WHEN v.handed THEN now() END,
    handed_over_at = CASE WHEN v.handed THEN now() ELSE d.handed_over_at END
FROM unnest(%s::bigint[], %s::bool[]) AS v(id, handed)
WHERE d.id = v.id AND (d.status = '{SENDING}' OR v.handed)
"""  # noqa: S608 (statuses only)

_FINISH = f"""
UPDATE deliveries AS d
SET status = CASE WHEN d.status = '{SENT}' THEN d.status ELSE v.status END,
    telegram_message_id = coalesce(v.message_id, d.telegram_message_id),
    error = v.error, attempts = v.attempts, updated_at = now(), handed_at = NULL,
    sent_at = CASE WHEN v.status = '{SENT}' THEN now() ELSE d.sent_at END,
    dead_letter = v.dead_letter,
    payload = CASE WHEN v.kept IS NULL THEN d.payload ELSE coalesce(d.payload, '{{}}') || v.kept END
FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[], %s::int[], %s::text[],
            %s::jsonb[])
     AS v(id, status, message_id, error, attempts, dead_letter, kept)
WHERE d.id = v.id
"""  # noqa: S608 (statuses only)

_MARK_PROCESSED = """
INSERT INTO processed_events (event_id, type, user_id, received_at)
SELECT e, t, u, now() FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS v(e, t, u)
ON CONFLICT DO NOTHING
"""


_HELD_USERS = f"""
SELECT DISTINCT user_id FROM deliveries WHERE status = '{HELD}' AND user_id = ANY(%s)
"""  # noqa: S608 (statuses only)

_HOLD = f"""
UPDATE deliveries AS d SET status = '{HELD}', release_at = v.release_at, payload = v.payload,
    updated_at = now()
FROM unnest(%s::bigint[], %s::timestamptz[], %s::jsonb[]) AS v(id, release_at, payload)
WHERE d.id = v.id AND d.status = '{SENDING}' AND d.handed_at IS NULL
RETURNING d.id
"""  # noqa: S608 (statuses only)

# The newest success of each (user, post); its counts replaced unless a newer update came first.
_POST_MESSAGES = """
WITH v AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::int[],
                         %s::timestamptz[]) AS v(key, user_id, post_id, likes, comments, at)
), target AS (
    SELECT DISTINCT ON (v.key) v.key, a.event_id, a.occurred_at, a.details, v.likes,
           v.comments, v.at
    FROM v JOIN activity a ON a.user_id = v.user_id AND a.post_id = v.post_id
                          AND a.type = 'post_success'
    ORDER BY v.key, a.occurred_at DESC
), applied AS (
    UPDATE activity AS a SET likes = t.likes, comments = t.comments,
        details = a.details || jsonb_build_object('metrics_at', t.at)
    FROM target t
    WHERE a.event_id = t.event_id
      AND coalesce((a.details ->> 'metrics_at')::timestamptz, '-infinity') <= t.at
    RETURNING a.event_id
)
SELECT t.key, t.event_id, t.occurred_at, t.details, t.event_id IN (SELECT event_id FROM applied),
       d.id, d.status, d.telegram_message_id, d.payload
FROM target t LEFT JOIN deliveries d ON d.dedupe_key = t.event_id::text
"""

# Rows the release loop is sending right now are locked: skip them rather than wait.
_UPDATE_HELD = f"""
WITH free AS (
    SELECT id FROM deliveries WHERE id = ANY(%s) AND status = '{HELD}' FOR UPDATE SKIP LOCKED
)
UPDATE deliveries AS d SET payload = d.payload || v.payload, updated_at = now()
FROM unnest(%s::bigint[], %s::jsonb[]) AS v(id, payload), free
WHERE d.id = v.id AND free.id = v.id
RETURNING d.id
"""  # noqa: S608 (statuses only)

# Whole users at a time, so one user's waiting messages fold into one message.
_HELD_WAITING = f"SELECT count(*), min(release_at) FROM deliveries WHERE status = '{HELD}'"  # noqa: S608
_DUE_HELD = f"""
SELECT id, event_id, event_type, user_id, payload, attempts FROM deliveries
WHERE status = '{HELD}' AND release_at <= %(now)s AND user_id IN (
    SELECT DISTINCT user_id FROM deliveries
    WHERE status = '{HELD}' AND release_at <= %(now)s LIMIT %(users)s
)
ORDER BY user_id, id
FOR UPDATE SKIP LOCKED
"""  # noqa: S608 (statuses only)

_MARK_FOLDED = """
UPDATE deliveries AS d
SET payload = coalesce(d.payload, '{}') || jsonb_build_object('folded', v.folded)
FROM unnest(%s::bigint[], %s::int[]) AS v(id, folded)
WHERE d.id = v.id
"""


def open_pool(database_url: str, size: int = 4) -> AsyncConnectionPool:
    """A psycopg pool for the notifier (open it with `await pool.open()`).

    No server-side prepared statements: PostgreSQL's generic plan for `= ANY($1)` over a batch
    is a sequential scan, which grows with the tables; planned per call with the actual array,
    every lookup is an index scan.
    """
    return AsyncConnectionPool(
        libpq_url(database_url),
        min_size=1,
        max_size=size,
        open=False,
        kwargs={"prepare_threshold": None},
    )


class NotifierStore:
    """Batch reads and writes of the notifier's tables (and reads of the linker's links)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self._marks: AsyncConnection | None = None

    async def processed(
        self, conn: AsyncConnection, event_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """The ids among `event_ids` whose processing already finished."""
        if not event_ids:
            return set()
        cursor = await conn.execute(_PROCESSED, (list(event_ids),))
        return {row[0] for row in await cursor.fetchall()}

    async def record_activity(self, conn: AsyncConnection, rows: Iterable[ActivityRow]) -> None:
        """Record platform events for the daily summary (idempotent per event id)."""
        batch = list(rows)
        if batch:
            await conn.execute(
                _ACTIVITY,
                (
                    [r.event_id for r in batch], [r.user_id for r in batch],
                    [r.type for r in batch], [r.occurred_at for r in batch],
                    [r.platform for r in batch], [r.likes for r in batch],
                    [r.comments for r in batch], [Jsonb(r.details) for r in batch],
                    [r.post_id for r in batch],
                ),
            )  # fmt: skip

    async def links(self, conn: AsyncConnection, user_ids: Iterable[str]) -> dict[str, Link]:
        """The links of these users (read from the linker's table)."""
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        cursor = await conn.execute(_LINKS, (ids,))
        return {
            user: Link(user, chat_id, enabled, tuple(muted or ()), language, zone, start, end,
                       tuple(silent or ()), mode, previews, thread, images)
            for (user, chat_id, enabled, muted, language, zone, start, end, silent, mode, previews,
                 thread, images) in await cursor.fetchall()
        }  # fmt: skip

    async def daily_reports(
        self, conn: AsyncConnection, windows: Sequence[SummaryWindow]
    ) -> dict[str, DailyReport]:
        """Aggregate each window's posts, outcomes and engagement (one query for the batch)."""
        if not windows:
            return {}
        bounds = [w.bounds() for w in windows]
        cursor = await conn.execute(
            _REPORTS,
            (
                [w.key for w in windows], [w.user_id for w in windows],
                [b[0] for b in bounds], [b[1] for b in bounds],
            ),
        )  # fmt: skip
        # per key and platform: [successes, failures, engagement of successes]
        totals: dict[str, dict[str, list[int]]] = {w.key: {} for w in windows}
        for key, type_, platform, count, engagement in await cursor.fetchall():
            entry = totals[key].setdefault(platform_key(platform) or "other", [0, 0, 0])
            if type_ == EventType.POST_SUCCESS:
                entry[0] += count
                entry[2] += int(engagement)
            else:
                entry[1] += count
        return {w.key: _report(w.day, totals[w.key]) for w in windows}

    async def begin_deliveries(
        self, conn: AsyncConnection, intents: Sequence[DeliveryIntent]
    ) -> dict[str, DeliveryRow]:
        """Create the delivery rows, or resume unfinished ones (one statement); by dedupe key.

        A row already in a final state keeps it, which tells the caller the event is a duplicate.
        Intents must have distinct dedupe keys.
        """
        if not intents:
            return {}
        final = list(FINAL_STATUSES)
        cursor = await conn.execute(
            _BEGIN_DELIVERIES,
            (
                [i.dedupe_key for i in intents], [i.event_id for i in intents],
                [i.event_type for i in intents], [i.user_id for i in intents],
                [i.chat_ref for i in intents], [i.status for i in intents],
                [i.occurred_at for i in intents], [i.preview for i in intents],
                [i.reason for i in intents], final, final, final,
            ),
        )  # fmt: skip
        return {
            key: DeliveryRow(id_, key, _STATUS[status], attempts, handed_at)
            for id_, key, status, attempts, handed_at in await cursor.fetchall()
        }

    async def mark_handed(self, marks: Sequence[tuple[int, bool]]) -> None:
        """Record that requests were written to Telegram (True) or definitely refused (False).

        Only rows still `sending` change `handed_at` (the delivery log's `handed_over_at` is set
        on any). Committed without waiting for the WAL flush: the mark guards against resending
        after *our* crash, and a database crash that loses it only means the message may be sent
        again (never that it is lost).
        """
        latest = dict(marks)  # the last word per delivery wins
        if not latest:
            return
        # Its own connection: a mark must never wait behind a batch holding the pool, and one
        # autocommitted statement is one round trip.
        if self._marks is None or self._marks.closed:
            self._marks = await AsyncConnection.connect(
                str(self.pool.conninfo),
                autocommit=True,
                prepare_threshold=None,
                options="-c synchronous_commit=off",
            )
        try:
            await self._marks.execute(_MARK_HANDED, (list(latest), list(latest.values())))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the hand-over marks' connection (the pool is closed by its owner)."""
        if self._marks is not None:
            marks, self._marks = self._marks, None
            await marks.close()

    async def finish(self, results: Sequence[DeliveryResult]) -> None:
        """Write the outcomes of sends and mark finished events processed (one transaction)."""
        if not results:
            return
        async with self.pool.connection() as conn, conn.transaction():
            await self.write_results(conn, results)

    async def write_results(self, conn: AsyncConnection, results: Sequence[DeliveryResult]) -> None:
        """`finish` in the caller's transaction.

        One statement for all; should it fail for anything but the database being unreachable,
        each result is written on its own (a savepoint each), so a row that cannot be written
        is logged and skipped instead of taking the others with it.
        """
        if not results:
            return
        try:
            async with conn.transaction():  # a savepoint
                await self._write_results(conn, results)
            return
        except Exception as exc:
            if is_transient(exc) or len(results) == 1:
                raise
            log.warning(
                "writing %d results failed (%r); writing them one by one", len(results), exc
            )
        for result in results:
            try:
                async with conn.transaction():
                    await self._write_results(conn, [result])
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.error("result of delivery %d not recorded: %r", result.delivery_id, exc)

    async def _write_results(
        self, conn: AsyncConnection, results: Sequence[DeliveryResult]
    ) -> None:
        await conn.execute(
            _FINISH,
            (
                [r.delivery_id for r in results], [r.status for r in results],
                [r.telegram_message_id for r in results],
                [None if r.error is None else storable(r.error)[:ERROR_CHARS] for r in results],
                [r.attempts for r in results], [r.dead_letter for r in results],
                [None if r.kept is None else Jsonb(r.kept) for r in results],
            ),
        )  # fmt: skip
        await self.mark_processed(conn, [r for r in results if r.final])

    async def mark_processed(
        self, conn: AsyncConnection, results: Sequence[DeliveryResult]
    ) -> None:
        """Insert the inbox rows of finished events."""
        if results:
            await conn.execute(
                _MARK_PROCESSED,
                (
                    [r.event_id for r in results], [r.event_type for r in results],
                    [r.user_id for r in results],
                ),
            )  # fmt: skip

    async def held_users(self, conn: AsyncConnection, user_ids: Iterable[str]) -> set[str]:
        """The users among `user_ids` who have deliveries held for quiet hours."""
        ids = sorted(set(user_ids))
        if not ids:
            return set()
        cursor = await conn.execute(_HELD_USERS, (ids,))
        return {row[0] for row in await cursor.fetchall()}

    async def hold(self, conn: AsyncConnection, holds: Sequence[Hold]) -> set[int]:
        """Turn `sending` deliveries into `held` ones; the ids that changed.

        A row already handed to Telegram (`handed_at`) or finished is left alone.
        """
        if not holds:
            return set()
        cursor = await conn.execute(
            _HOLD,
            (
                [h.delivery_id for h in holds], [h.release_at for h in holds],
                [Jsonb(h.payload) for h in holds],
            ),
        )  # fmt: skip
        return {row[0] for row in await cursor.fetchall()}

    async def post_messages(
        self, conn: AsyncConnection, updates: Sequence[MetricsUpdate]
    ) -> dict[str, PostMessage]:
        """Apply new counts to each post's success activity; its message, by update key.

        Updates must name distinct (user, post) pairs. An update older than one applied before
        changes nothing (`applied` False).
        """
        if not updates:
            return {}
        cursor = await conn.execute(
            _POST_MESSAGES,
            (
                [u.key for u in updates], [u.user_id for u in updates],
                [u.post_id for u in updates], [u.likes for u in updates],
                [u.comments for u in updates], [u.at for u in updates],
            ),
        )  # fmt: skip
        found = {}
        for (
            key,
            event_id,
            at,
            details,
            applied,
            delivery_id,
            status,
            message_id,
            payload,
        ) in await cursor.fetchall():
            state = None if status is None else _STATUS[status]
            found[key] = PostMessage(
                event_id, at, details, applied, delivery_id, state, message_id, payload
            )
        return found

    async def update_held(
        self, conn: AsyncConnection, payloads: dict[int, dict[str, Any]]
    ) -> set[int]:
        """Merge new payload fields into still-held deliveries (by id); the ids updated.

        A delivery being released at this moment is skipped, not waited for.
        """
        if not payloads:
            return set()
        ids = list(payloads)
        cursor = await conn.execute(_UPDATE_HELD, (ids, ids, [Jsonb(p) for p in payloads.values()]))
        return {row[0] for row in await cursor.fetchall()}

    async def due_held(
        self, conn: AsyncConnection, now: datetime, users: int
    ) -> list[HeldDelivery]:
        """Lock the held deliveries due at `now` of up to `users` users, oldest first per user.

        Rows another replica has locked are skipped: each is released by exactly one.
        """
        cursor = await conn.execute(_DUE_HELD, {"now": now, "users": users})
        return [HeldDelivery(*row) for row in await cursor.fetchall()]

    async def held_waiting(self, conn: AsyncConnection) -> tuple[int, datetime | None]:
        """How many deliveries are held, and the earliest release time among them."""
        row = await (await conn.execute(_HELD_WAITING)).fetchone()
        return (int(row[0]), row[1]) if row else (0, None)

    async def mark_folded(self, conn: AsyncConnection, folds: Sequence[Sequence[int]]) -> None:
        """Note, for each group of delivery ids, that they went out together in one message (it
        is never edited); one statement for all the groups."""
        ids = [i for fold in folds for i in fold]
        if ids:
            sizes = [len(fold) for fold in folds for _ in fold]
            await conn.execute(_MARK_FOLDED, (ids, sizes))


def _report(day: date, per_platform: dict[str, list[int]]) -> DailyReport:
    ok = sum(v[0] for v in per_platform.values())
    failed = sum(v[1] for v in per_platform.values())
    return DailyReport(
        day=day,
        total_posts=ok + failed,
        successful_posts=ok,
        failed_posts=failed,
        total_engagement=sum(v[2] for v in per_platform.values()),
        platforms={
            name: PlatformTotals(posts=v[0] + v[1], engagement=v[2])
            for name, v in per_platform.items()
        },
    )
