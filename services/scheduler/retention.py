"""Data retention: `prune` deletes what every growing table no longer needs, in small batches.

Each table is pruned by one indexed time column (migration 0005): a batch locks at most
PRUNE_BATCH_SIZE of the oldest rows past the cutoff that nobody else holds (`FOR UPDATE SKIP
LOCKED`, so the notifier never waits on a prune and a prune never waits on it) and deletes them
by primary key, in its own short transaction. Why batches and not partitions: docs/architecture.md,
"Tables and their lifecycle".

`prune` is the one entry point: the scheduler's retention job (`upkeep.py`), `sns-telegram
prune` and the benchmarks call it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler.retention_settings import RATE_LIMIT_STATE_KEPT_FOR, RetentionSettings

STATEMENT_TIMEOUT = "30s"
"""No batch may run longer than this (a batch is milliseconds; this only bounds the unforeseen)."""


@dataclass(frozen=True)
class Rule:
    """What goes from one table: rows whose `column` is older than now - `keep`, unless `keeps`."""

    table: str
    key: str
    column: str
    keep: timedelta
    keeps: str = ""
    """An SQL condition on rows that stay whatever their age (rows in use)."""
    why: str = ""


def rules(settings: RetentionSettings) -> list[Rule]:
    """The rule of every pruned table, in the order they are pruned."""
    days = timedelta(days=1)
    return [
        Rule(
            "processed_events",
            "event_id",
            "received_at",
            settings.retention_processed_events_days * days,
            why="idempotency keys, past every redelivery and replay window",
        ),
        Rule(
            "deliveries",
            "id",
            "created_at",
            settings.retention_deliveries_days * days,
            keeps="status = 'held'",
            why="the delivery log; a held delivery stays until it is sent",
        ),
        Rule(
            "delivery_attempts",
            "id",
            "at",
            settings.retention_deliveries_days * days,
            why="the delivery log's refused attempts, kept as long as their deliveries",
        ),
        Rule(
            "button_presses",
            "id",
            "pressed_at",
            settings.retention_deliveries_days * days,
            why="the delivery log's button presses, kept as long as the deliveries",
        ),
        Rule(
            "activity",
            "event_id",
            "recorded_at",
            settings.retention_activity_days * days,
            why="daily reports, Retry and live metrics",
        ),
        Rule(
            "link_tokens",
            "token_hash",
            "expires_at",
            timedelta(hours=settings.retention_link_tokens_hours),
            why="expired (or used, or revoked, then expired) link tokens",
        ),
        Rule(
            "rate_limits",
            "key",
            "tat",
            RATE_LIMIT_STATE_KEPT_FOR,
            why="rate-limit states that no longer limit anything",
        ),
        Rule(
            "summary_runs",
            "id",
            "due_at",
            settings.retention_summary_runs_days * days,
            why="daily-summary triggers",
        ),
        Rule(
            "job_runs",
            "id",
            "started_at",
            settings.retention_job_runs_days * days,
            why="scheduler job history",
        ),
    ]


def _where(rule: Rule) -> str:
    return f"{rule.column} < :cutoff" + (f" AND NOT ({rule.keeps})" if rule.keeps else "")


def delete_batch(rule: Rule) -> TextClause:
    """Delete up to :batch of the oldest expired rows nobody holds; (rows, bytes) deleted.

    The rows are found on the time column's index and deleted through the primary key (`= ANY`
    of an array: an index scan, never a join that could become a sequential scan).
    """
    return text(f"""
        WITH gone AS (
            DELETE FROM {rule.table} AS t
            WHERE t.{rule.key} = ANY(ARRAY(
                SELECT {rule.key} FROM {rule.table}
                WHERE {_where(rule)}
                ORDER BY {rule.column}
                LIMIT :batch
                FOR UPDATE SKIP LOCKED
            ))
            RETURNING pg_column_size(t.*) AS size
        )
        SELECT count(*), coalesce(sum(size), 0) FROM gone
    """)  # noqa: S608 (table and column names are the constants above)


def count_expired(rule: Rule) -> TextClause:
    """What `delete_batch` would delete in all: (rows, bytes), deleting nothing."""
    return text(f"""
        SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0)
        FROM {rule.table} AS t WHERE {_where(rule)}
    """)  # noqa: S608 (table and column names are the constants above)


@dataclass
class TablePrune:
    """What went (or, in a dry run, would go) from one table."""

    table: str
    cutoff: datetime
    why: str
    rows: int = 0
    bytes: int = 0
    """The rows' own size (`pg_column_size`), without their index entries."""
    batches: int = 0


@dataclass
class PruneReport:
    """One prune: per table, rows and bytes removed (or that a dry run would remove)."""

    dry_run: bool
    now: datetime
    tables: list[TablePrune] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows removed from all tables."""
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        """Bytes of row data removed from all tables."""
        return sum(t.bytes for t in self.tables)

    def by_table(self) -> dict[str, int]:
        """Rows per table."""
        return {t.table: t.rows for t in self.tables}

    def details(self) -> dict[str, object]:
        """The report as a job run's details."""
        return {
            "dry_run": self.dry_run,
            "rows": self.by_table(),
            "bytes": {t.table: t.bytes for t in self.tables},
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        """The report for an operator, one line per table and a total."""
        verb = "would delete" if self.dry_run else "deleted"
        out = [
            f"{t.table:<17} {verb} {t.rows:>10,} rows {t.bytes:>14,} bytes "
            f"(older than {t.cutoff:%Y-%m-%d %H:%M} UTC: {t.why})"
            for t in self.tables
        ]
        out.append(f"{'total':<17} {verb} {self.rows:>10,} rows {self.bytes:>14,} bytes")
        return out


async def prune(
    engine: AsyncEngine,
    settings: RetentionSettings,
    now: datetime | None = None,
    dry_run: bool = False,
    *,
    pause: float = 0.0,
) -> PruneReport:
    """Delete every row past its retention (`dry_run`: only count them); what went, per table.

    Each batch of at most PRUNE_BATCH_SIZE rows is its own transaction; `pause` seconds between
    batches let other work through on a busy database. Safe to run beside the services and
    beside another prune (the batches skip each other's rows).
    """
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    report = PruneReport(dry_run, now)
    for rule in rules(settings):
        item = TablePrune(rule.table, now - rule.keep, rule.why)
        report.tables.append(item)
        if dry_run:
            async with engine.connect() as conn:
                found = (await conn.execute(count_expired(rule), {"cutoff": item.cutoff})).one()
            item.rows, item.bytes = int(found[0]), int(found[1])
            continue
        while True:
            async with engine.begin() as conn:
                await conn.execute(text(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"))
                params = {"cutoff": item.cutoff, "batch": settings.prune_batch_size}
                rows, size = (await conn.execute(delete_batch(rule), params)).one()
            item.rows += int(rows)
            item.bytes += int(size)
            item.batches += 1
            if rows < settings.prune_batch_size:
                break
            await asyncio.sleep(pause)
    report.seconds = time.perf_counter() - started
    return report
