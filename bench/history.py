"""History for the benchmarks: the events a platform sends, and millions of the rows the notifier
writes for them, cloned in the database with `generate_series` (no row crosses the network).

The rows are not invented: `templates` reads, in a database the notifier has just worked in, one
row of each table per event type as the notifier wrote it, and `fill` clones those in another
(or the same) database with fresh event ids, users and times spread over each table's window.
A column the schema gains later is copied as the notifier wrote it; `id`s come from their
sequences.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared.contract import Event, EventType, new_event
from shared.db import libpq_url

HISTORY_TABLES = ("processed_events", "activity", "deliveries")
"""The tables a delivered event writes (the notifier's)."""

MIX = (
    (EventType.POST_SUCCESS, 6),
    (EventType.POST_FAILURE, 2),
    (EventType.AUTOMATION_EXECUTED, 1),
    (EventType.DAILY_SUMMARY, 1),
)
"""Ten events of a user's day: six posts published, two failed, one automation run, one daily
report. Each is one sendMessage; edits (`post_metrics_updated`) are left out, their message ids
being the stand-in's."""
SLOTS = [kind for kind, weight in MIX for _ in range(weight)]

CONTENT = "New post: spring collection is live! 🌸 " * 4
"""A post's text as users write them (~170 characters)."""

_TYPE_COLUMN = {"processed_events": "type", "activity": "type", "deliveries": "event_type"}


def mixed_event(i: int, users: int) -> Event:
    """Event number `i` of the mix, for user `bench-1..users`; a user's daily reports are for
    successive past days, so none is a duplicate."""
    kind = SLOTS[i % len(SLOTS)]
    user = f"bench-{i % users + 1}"
    if kind is EventType.POST_SUCCESS:
        data: dict[str, Any] = {
            "platform": ("instagram", "twitter", "facebook")[i % 3],
            "content": CONTENT,
            "likes": i % 1000,
            "comments": i % 50,
            "post_url": f"https://instagram.com/p/bench{i}",
            "post_id": f"bench-post-{i}",
        }
    elif kind is EventType.POST_FAILURE:
        data = {"platform": "twitter", "error": "Connection timeout", "post_id": f"bench-post-{i}"}
    elif kind is EventType.AUTOMATION_EXECUTED:
        data = {
            "automation_name": "Daily Instagram Post",
            "platforms": ["instagram", "twitter"],
            "execution_time": "2026-02-26 10:30:00 UTC",
        }
    else:
        n = i // len(SLOTS)
        user = f"bench-{n % users + 1}"
        day = datetime.now(UTC).date() - timedelta(days=1 + n // users)
        data = {"date": day.isoformat(), "timezone": "UTC"}
    return new_event(kind, user, data)


@dataclass(frozen=True)
class Filled:
    """What `fill` wrote."""

    events: int
    rows: dict[str, int]
    seconds: float
    days: dict[str, float]

    @property
    def total(self) -> int:
        return sum(self.rows.values())


async def templates(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """One row per event type of each history table, as the notifier wrote them there."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        for table in HISTORY_TABLES:
            kind = _TYPE_COLUMN[table]
            cursor = await conn.execute(
                f"SELECT row_to_json(t) FROM (SELECT DISTINCT ON ({kind}) * FROM {table} "
                f"ORDER BY {kind}) t"
            )
            out[table] = [row[0] for row in await cursor.fetchall()]
    return out


async def _columns(conn: psycopg.AsyncConnection[Any], table: str) -> list[tuple[str, str, bool]]:
    """(name, data type, has a sequence default) of the table's columns."""
    cursor = await conn.execute(
        "SELECT column_name, data_type, coalesce(column_default LIKE 'nextval(%%', false) "
        "OR is_identity = 'YES' FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return [(name, kind, bool(serial)) for name, kind, serial in await cursor.fetchall()]


_SECONDARY = """
SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i
WHERE indrelid = %s::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
"""
"""A table's indexes that back no constraint: their names and definitions."""


def _expression(name: str, kind: str) -> str:
    """What column `name` of a cloned row holds: the event's own values, else the template's."""
    t = f"t.{name}"
    if name in ("event_id", "user_id"):
        return f"h.{name}"
    if name == "dedupe_key":  # the event id, or daily_summary:<user>:<a date of its own>
        return (
            "CASE WHEN t.dedupe_key LIKE 'daily_summary:%%' THEN 'daily_summary:' || h.user_id "
            "|| ':' || to_char(date '1900-01-01' + h.n, 'YYYY-MM-DD') ELSE h.event_id::text END"
        )
    if name == "post_id":
        return f"CASE WHEN {t} IS NULL THEN NULL ELSE 'hist-post-' || h.n END"
    if name == "telegram_message_id":
        return f"CASE WHEN {t} IS NULL THEN NULL ELSE h.n END"
    if kind.startswith("timestamp"):
        return f"CASE WHEN {t} IS NULL THEN NULL ELSE h.at END"
    return t


async def fill(
    database_url: str,
    rows: int,
    samples: dict[str, list[dict[str, Any]]],
    days: dict[str, float],
    users: int,
) -> Filled:
    """About `rows` history rows in HISTORY_TABLES, in MIX's proportions, for users
    `bench-1..users`; event times uniform over the longest window in `days` (per table), each
    table keeping its own window's share, as it would in a steady state under retention. Then
    VACUUM ANALYZE (autovacuum would have done it by then)."""
    longest = max(days.values())
    # rows = events * sum over tables of (share of events with a row there) * days / longest
    per_event = 0.0
    for table in HISTORY_TABLES:
        kinds = {row[_TYPE_COLUMN[table]] for row in samples[table]}
        share = sum(1 for kind in SLOTS if kind.value in kinds) / len(SLOTS)
        per_event += share * days[table] / longest
    events = round(rows / per_event)
    started = time.perf_counter()
    written: dict[str, int] = {}
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as conn:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("SET work_mem = '64MB'")
        await conn.execute(
            "CREATE TEMP TABLE hist AS SELECT g AS n, gen_random_uuid() AS event_id, "
            "'bench-' || (g %% %(users)s + 1) AS user_id, "
            "now() - random() * make_interval(secs => %(window)s) AS at, "
            "(%(slots)s::text[])[1 + g %% %(k)s] AS kind "
            "FROM generate_series(1, %(events)s) AS g",
            {
                "users": users,
                "window": longest * 86400,
                "slots": [kind.value for kind in SLOTS],
                "k": len(SLOTS),
                "events": events,
            },
        )
        for table in HISTORY_TABLES:
            # Secondary indexes are dropped and built again after the rows are in (a sort
            # instead of millions of random inserts); the rows go in event id order, so the
            # primary and unique keys (kept) grow at their right edge.
            cursor = await conn.execute(_SECONDARY, (table,))
            secondary = await cursor.fetchall()
            for name, _ in secondary:
                await conn.execute(f"DROP INDEX {name}")
            columns = [c for c in await _columns(conn, table) if not c[2]]
            names = ", ".join(name for name, _, _ in columns)
            kind = _TYPE_COLUMN[table]
            await conn.execute(
                f"CREATE TEMP TABLE tpl_{table} AS SELECT * FROM "
                f"json_populate_recordset(null::{table}, %s::json)",
                (Jsonb(samples[table]),),
            )
            cursor = await conn.execute(
                f"INSERT INTO {table} ({names}) SELECT "
                + ", ".join(_expression(name, kind_) for name, kind_, _ in columns)
                + f" FROM hist h JOIN tpl_{table} t ON t.{kind} = h.kind"
                " WHERE h.at > now() - make_interval(secs => %s) ORDER BY h.event_id",
                (days[table] * 86400,),
            )
            written[table] = cursor.rowcount
            for _, definition in secondary:
                await conn.execute(definition)
        for table in HISTORY_TABLES:
            await conn.execute(f"VACUUM ANALYZE {table}")
        await conn.execute("DROP TABLE hist")
    return Filled(events, written, round(time.perf_counter() - started, 1), days)
