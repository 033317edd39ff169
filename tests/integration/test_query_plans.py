"""Query plans that stay flat: every statement the services run per event or per tick, and every
prune statement, can use an index: none is a sequential scan of a table that grows.

Each statement is EXPLAINed with realistic parameters on tables holding thousands of rows, with
`enable_seqscan = off`: that setting only makes the planner prefer an index it *can* use, so a
`Seq Scan` left in a plan means no index serves the statement, however big the table gets. A new
statement in the notifier's store or the scheduler's queries fails the test until it is listed
here (with parameters, or with the reason it reads a whole table).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import TextClause, select
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect

from services.notifier import notes
from services.notifier import store as notifier_store
from services.notifier.records import FINAL_STATUSES
from services.scheduler import queries, upkeep
from services.scheduler.retention import count_expired, delete_batch, rules
from services.scheduler.retention_settings import RetentionSettings
from shared.db import libpq_url
from shared.models import Delivery
from tests.support.rows import TABLES

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ROWS = 5000
USERS = [f"plan-user-{i}" for i in range(3)]
EVENTS = [uuid.uuid4() for _ in range(3)]
IDS = [1, 2, 3]

FILL = f"""
INSERT INTO telegram_links (user_id, chat_id, enabled, linked_at, updated_at)
SELECT 'plan-user-' || g, g::text, true, now(), now() FROM generate_series(1, {ROWS}) g;
INSERT INTO summary_schedules (user_id, timezone, summary_time, summary_date, due_at)
SELECT 'plan-user-' || g, 'UTC', '09:00', current_date, now() + g * interval '1 minute'
FROM generate_series(1, {ROWS}) g;
INSERT INTO processed_events (event_id, type, user_id, received_at)
SELECT gen_random_uuid(), 'post_success', 'plan-user-' || g % 500, now() - g * interval '1 minute'
FROM generate_series(1, {ROWS}) g;
INSERT INTO activity (event_id, user_id, type, occurred_at, platform, post_id, details, recorded_at,
                      likes, comments)
SELECT gen_random_uuid(), 'plan-user-' || g % 500, 'post_success', now() - g * interval '1 minute',
       'instagram', 'post-' || g, '{{}}', now() - g * interval '1 minute', 1, 1
FROM generate_series(1, {ROWS}) g;
INSERT INTO deliveries (dedupe_key, event_id, event_type, user_id, status, attempts, created_at,
                        updated_at, release_at)
SELECT g::text, gen_random_uuid(), 'post_success', 'plan-user-' || g % 500,
       CASE WHEN g % 100 = 0 THEN 'held' ELSE 'sent' END, 1, now() - g * interval '1 minute',
       now(), CASE WHEN g % 100 = 0 THEN now() + interval '1 hour' END
FROM generate_series(1, {ROWS}) g;
INSERT INTO link_tokens (token_hash, user_id, created_at, expires_at)
SELECT md5(g::text), 'plan-user-' || g, now(), now() + (g - {ROWS // 2}) * interval '1 minute'
FROM generate_series(1, {ROWS}) g;
INSERT INTO rate_limits (key, tat)
SELECT 'test_message:plan-user-' || g, now() - g * interval '1 minute' FROM generate_series(1, {ROWS}) g;
INSERT INTO summary_runs (user_id, summary_date, kind, event_id, due_at, created_at, attempts,
                          published_at)
SELECT 'plan-user-' || g, current_date - g % 60, 'scheduled', gen_random_uuid(),
       now() - g * interval '1 minute', now(), 1, CASE WHEN g % 50 <> 0 THEN now() END
FROM generate_series(1, {ROWS}) g;
INSERT INTO job_runs (job_id, trigger, started_at, emitted, failed, details)
SELECT 'telegram_daily_summary', 'schedule', now() - g * interval '1 minute', 0, 0, '{{}}'
FROM generate_series(1, {ROWS}) g;
ANALYZE;
"""  # noqa: S608 (constants only)

# -- the notifier's statements (services/notifier/store.py), with a batch's parameters ----------
_arr = list
NOTIFIER: dict[str, Any] = {
    "_PROCESSED": (EVENTS,),
    "_ACTIVITY": (EVENTS, USERS, ["post_success"] * 3, [NOW] * 3, ["x"] * 3, [1] * 3, [1] * 3,
                  [Jsonb({})] * 3, ["p"] * 3),
    "_LINKS": (USERS,),
    "_REPORTS": (["k"] * 3, USERS, [NOW - timedelta(days=1)] * 3, [NOW] * 3),
    "_BEGIN_DELIVERIES": ([str(e) for e in EVENTS], EVENTS, ["post_success"] * 3, USERS,
                          ["c"] * 3, ["sending"] * 3, [NOW] * 3, ["p"] * 3, [None] * 3,
                          _arr(FINAL_STATUSES), _arr(FINAL_STATUSES), _arr(FINAL_STATUSES)),
    "_MARK_HANDED": (IDS, [True] * 3),
    "_FINISH": (IDS, ["sent"] * 3, [1] * 3, [None] * 3, [1] * 3, [None] * 3,
                [Jsonb({"sent_as": "photo"}), None, None]),
    "_MARK_PROCESSED": (EVENTS, ["post_success"] * 3, USERS),
    "_HELD_USERS": (USERS,),
    "_HOLD": (IDS, [NOW] * 3, [Jsonb({})] * 3),
    "_POST_MESSAGES": (["k"] * 3, USERS, ["post-1"] * 3, [1] * 3, [1] * 3, [NOW] * 3),
    "_UPDATE_HELD": (IDS, IDS, [Jsonb({})] * 3),
    "_DUE_HELD": {"now": NOW, "users": 100},
    "_HELD_WAITING": None,
    "_MARK_FOLDED": (IDS, [3] * 3),
}  # fmt: skip

# -- the delivery log's notes (services/notifier/notes.py) and reads (delivery_log.py) ---------
NOTES: dict[str, Any] = {
    "_DEAD_LETTERS": ([str(e) for e in EVENTS], EVENTS, ["post_success"] * 3, USERS, [NOW] * 3,
                      ["e"] * 3, ["invalid"] * 3, _arr(FINAL_STATUSES)),
    "_ATTEMPTS": (IDS, EVENTS, IDS, [NOW] * 3, ["transient"] * 3, [502] * 3, ["d"] * 3, [None] * 3),
}  # fmt: skip


def delivery_log_reads() -> dict[str, tuple[str, dict[str, Any]]]:
    """The delivery log's queries as the linker and `trace` run them (compiled for psycopg)."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    page = (
        select(table)
        .where(table.c.user_id == USERS[0], table.c.id < 100, table.c.event_type.in_(["x"]))
        .order_by(table.c.id.desc())
        .limit(21)
    )
    by_event = select(table).where(table.c.event_id == EVENTS[0])
    reads = {}
    for name, query in (("user_log", page), ("trace", by_event)):
        compiled = query.compile(
            dialect=psycopg_dialect.dialect(), compile_kwargs={"render_postcompile": True}
        )
        reads[name] = (str(compiled), dict(compiled.params))
    return reads


# -- the scheduler's statements (services/scheduler/queries.py, upkeep.py) ------------------------
_SCHEDULE_ROWS = json.dumps(
    [
        {"user_id": u, "timezone": "UTC", "summary_time": "09:00", "summary_date": "2026-12-01",
         "due_at": NOW.isoformat(), "seen_due_at": NOW.isoformat(), "event_id": str(e)}
        for u, e in zip(USERS, EVENTS, strict=True)
    ]
)  # fmt: skip
SCHEDULER: dict[str, dict[str, Any]] = {
    "TRY_LOCK_SYNC": {"key": 1},
    "INSERT_SCHEDULES": {"now": NOW, "rows": _SCHEDULE_ROWS},
    "RESCHEDULE": {"now": NOW, "rows": _SCHEDULE_ROWS},
    "DELETE_SCHEDULES": {"users": USERS},
    "CLAIM_DUE": {"now": NOW, "limit": 5000},
    "ADVANCE": {"now": NOW, "rows": _SCHEDULE_ROWS},
    "RECORD_SCHEDULED": {"now": NOW, "job_run_id": 1, "rows": _SCHEDULE_ROWS},
    "RECORD_RESEND": {"user_id": "u", "summary_date": date(2026, 12, 1), "event_id": EVENTS[0],
                      "now": NOW, "job_run_id": 1, "zone": "UTC"},
    "CLAIM_UNPUBLISHED": {"oldest": NOW - timedelta(hours=6), "limit": 5000},
    "CLAIM_UNPUBLISHED_BY_ID": {"ids": IDS, "oldest": NOW - timedelta(hours=6), "limit": 5000},
    "MARK_PUBLISHED": {"now": NOW, "ids": IDS},
    "MARK_FAILED": {"ids": IDS, "errors": ["e"] * 3},
    "UNPUBLISHED_COUNT": {"oldest": NOW - timedelta(hours=6)},
    "LINK": {"user_id": "u"},
    "START_JOB_RUN": {"job_id": "j", "trigger": "t", "started_at": NOW, "details": "{}"},
    "FINISH_JOB_RUN": {"id": 1, "finished_at": NOW, "emitted": 0, "failed": 0, "error": None,
                       "details": "{}"},
    "JOB_RUNS": {"job_id": "telegram_daily_summary", "limit": 20, "offset": 0},
}  # fmt: skip
WHOLE_TABLE_BY_DESIGN = {
    "SYNC": "the reconciliation merges every link with every schedule row, once per tick",
    "ACTIVE_LINKS": "the admin's trigger-all reads every active link",
    "COUNT_JOB_RUNS": "the admin history's total",
    "SCHEDULE_OVERVIEW": "the admin status's count of schedules",
}
UPKEEP: dict[str, dict[str, Any]] = {
    "CLAIM_SLOT": {"job_id": "j", "trigger": "t", "started_at": NOW, "details": "{}", "slot": NOW},
    "FINISH_RUN": {"id": 1, "finished_at": NOW, "error": None, "details": "{}"},
}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.fixture(scope="module")
def explain(template_database_url):
    """EXPLAIN (FORMAT JSON) on a database of this module's own, filled and analysed."""
    from shared.db import drop_database
    from tests.conftest import _clone

    url = _clone(template_database_url, "sns_plans")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(FILL)  # type: ignore[arg-type]
        conn.execute("SET enable_seqscan = off")

        def plan(statement: str, params: Any) -> list[dict[str, Any]]:
            row = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params).fetchone()  # type: ignore[arg-type]
            assert row is not None
            return list(_nodes(row[0][0]["Plan"]))

        yield plan
    drop_database(url)


def _psycopg(clause: TextClause) -> str:
    """A SQLAlchemy text() statement in psycopg's %(name)s style."""
    return str(clause.compile(dialect=psycopg_dialect.dialect()))


def seq_scans(nodes: list[dict[str, Any]]) -> list[str]:
    return [
        n["Relation Name"]
        for n in nodes
        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in TABLES
    ]


def statements(module: Any, kind: type) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if name.isupper() or (name.startswith("_") and name[1:].isupper())
        if isinstance(value, kind) and (kind is not str or "SELECT" in value or "UPDATE" in value)
    }


def test_every_statement_of_the_notifier_and_scheduler_is_checked():
    assert statements(notifier_store, str) == set(NOTIFIER)
    assert statements(notes, str) == set(NOTES)
    assert statements(queries, TextClause) == set(SCHEDULER) | set(WHOLE_TABLE_BY_DESIGN)
    assert statements(upkeep, TextClause) == set(UPKEEP)


@pytest.mark.parametrize("name", sorted(NOTIFIER))
def test_the_notifiers_statements_use_indexes(explain, name):
    assert seq_scans(explain(getattr(notifier_store, name), NOTIFIER[name])) == []


@pytest.mark.parametrize("name", sorted(NOTES))
def test_the_delivery_log_notes_use_indexes(explain, name):
    assert seq_scans(explain(getattr(notes, name), NOTES[name])) == []


@pytest.mark.parametrize("name", ["user_log", "trace"])
def test_the_delivery_log_reads_use_indexes(explain, name):
    statement, params = delivery_log_reads()[name]
    assert seq_scans(explain(statement, params)) == []


@pytest.mark.parametrize("name", sorted(SCHEDULER))
def test_the_schedulers_statements_use_indexes(explain, name):
    assert seq_scans(explain(_psycopg(getattr(queries, name)), SCHEDULER[name])) == []


@pytest.mark.parametrize("name", sorted(UPKEEP))
def test_the_retention_jobs_statements_use_indexes(explain, name):
    assert seq_scans(explain(_psycopg(getattr(upkeep, name)), UPKEEP[name])) == []


@pytest.mark.parametrize("rule", rules(RetentionSettings(_env_file=None)), ids=lambda r: r.table)
def test_prune_batches_walk_the_time_index_and_delete_by_key(explain, rule):
    params = {"cutoff": NOW - rule.keep, "batch": 5000}
    for statement in (delete_batch(rule), count_expired(rule)):
        nodes = explain(_psycopg(statement), params)
        assert seq_scans(nodes) == []
        used = {n.get("Index Name") for n in nodes if n.get("Relation Name") == rule.table}
        assert f"ix_{rule.table}_{rule.column}" in used, used
    deleting = explain(_psycopg(delete_batch(rule)), params)
    keys = {
        n.get("Index Name")
        for n in deleting
        if n["Node Type"] in ("Index Scan", "Bitmap Index Scan")
    }
    assert any(k and k.endswith("_pkey") for k in keys), keys


def test_a_statement_without_an_index_is_caught(explain):
    """The check can fail: a filter on an unindexed column is a sequential scan."""
    assert seq_scans(explain("SELECT * FROM deliveries WHERE error = %s", ("x",))) == ["deliveries"]
