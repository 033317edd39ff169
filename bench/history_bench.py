"""The notifier at an empty database and at one holding millions of history rows; the bytes a
delivered event costs. Writes bench/results/history.json.

    uv run python -m bench.history_bench [filled] [size]      (default: both)
    BENCH_HISTORY_ROWS=10000000   history rows (BENCH_QUICK=1: 1,000,000; 0 skips `filled`)
    BENCH_REPEAT=3                runs of each side; medians reported

- **filled**: one database gets the history (bench/history.py: rows the notifier wrote in its
  first, empty run, cloned with generate_series over each table's retention window), then the
  notifier bench's throughput procedure (bench/notifier_bench.py, a mix of event types) runs
  alternately on a fresh empty database and on the filled one, BENCH_REPEAT times: events/s and
  CPU ms per event on each, the ratio filled / empty, and the hot statements' plans at the end.
  Both databases have the same 100,000 links; only the history differs. The filled database is
  regenerated on every run (about a minute per million rows): nothing is kept between runs.
- **size**: an hour of traffic at 3 million events a day (125,000 events; BENCH_QUICK: a tenth;
  BENCH_SIZE_EVENTS) through the notifier at full speed into an empty database; bytes each
  history table grew per event, and the steady state under retention projected from it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

import psycopg
from rich.console import Console

from bench import notifier_bench
from bench.chart import load
from bench.harness import Servers, seed_links, servers, sized, write_result
from bench.history import HISTORY_TABLES, fill, mixed_event, templates
from bench.pruning import retention_days, while_pruning
from shared.db import libpq_url

console = Console()
ROWS = int(os.environ.get("BENCH_HISTORY_ROWS", sized(10_000_000, 1_000_000)))
REPEAT = int(os.environ.get("BENCH_REPEAT", sized(3, 2)))
PRUNE = os.environ.get("BENCH_PRUNE", "1") == "1"
"""Measure pruning beside the notifier on the filled database (BENCH_PRUNE=0: skip)."""
EVENTS = sized(20_000, 5_000)
EVENTS_PER_DAY = 3_000_000
HOUR = int(os.environ.get("BENCH_SIZE_EVENTS", sized(EVENTS_PER_DAY // 24, EVENTS_PER_DAY // 240)))
LINKED = 100_000
"""Linked users in both databases (and the history's users); events go to the first 2,000."""
SENDERS = 2_000
RETENTION_DAYS = retention_days()
"""How long each history table keeps rows by default (RETENTION_*_DAYS), in days: the history's
spread, and the steady state's."""


async def table_bytes(database_url: str) -> dict[str, int]:
    """pg_total_relation_size of each history table (all partitions, indexes and TOAST)."""
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        out = {}
        for table in HISTORY_TABLES:
            cursor = await conn.execute(
                "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT sum(pg_total_relation_size(relid)) "
                "FROM pg_partition_tree(c.oid)) ELSE pg_total_relation_size(c.oid) END::bigint "
                "FROM pg_class c WHERE c.oid = %s::regclass",
                (table,),
            )
            out[table] = int((await cursor.fetchone() or [0])[0])
        return out


async def row_counts(database_url: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        out = {}
        for table in HISTORY_TABLES:
            cursor = await conn.execute(f"SELECT count(*) FROM {table}")
            out[table] = int((await cursor.fetchone() or [0])[0])
        return out


async def _run(s: Servers, events: int, offset: int) -> dict[str, Any]:
    """The notifier bench's throughput procedure on `s` with the mix, events numbered from
    `offset` (so a user's daily reports never repeat in one database)."""
    return await notifier_bench.throughput(
        events, SENDERS, on=s, make=lambda i, users: mixed_event(offset + i, users)
    )


def _side(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "events_per_s": round(statistics.median(r["events_per_second"] for r in runs), 1),
        "cpu_ms_per_event": round(
            statistics.median(r["notifier_cpu_ms_per_event"] for r in runs), 3
        ),
        "runs_events_per_s": [r["events_per_second"] for r in runs],
        "runs_cpu_ms_per_event": [r["notifier_cpu_ms_per_event"] for r in runs],
    }


async def filled(rows: int = ROWS, repeat: int = REPEAT) -> dict[str, Any]:
    """Empty beside filled, alternately, `repeat` times each; the history is made once."""
    empty_runs: list[dict[str, Any]] = []
    filled_runs: list[dict[str, Any]] = []
    with servers() as big:
        await seed_links(big.database_url, LINKED)
        console.print(f"empty run 1/{repeat} (its rows become the history's templates)")
        empty_runs.append(await _run(big, EVENTS, 0))
        samples = await templates(big.database_url)
        empty_plans = await hot_plans(big.database_url)
        console.print(f"filling {rows:,} history rows")
        history = await fill(big.database_url, rows, samples, RETENTION_DAYS, LINKED)
        console.print(f"  {history.rows} in {history.seconds} s")
        for n in range(repeat):
            if n:
                with servers() as empty:
                    await seed_links(empty.database_url, LINKED)
                    empty_runs.append(await _run(empty, EVENTS, 0))
            filled_runs.append(await _run(big, EVENTS, (n + 1) * EVENTS))
            console.print(
                f"run {n + 1}: empty {empty_runs[-1]['events_per_second']}/s, "
                f"filled {filled_runs[-1]['events_per_second']}/s"
            )
        plans = await hot_plans(big.database_url)
        pruned = None
        if PRUNE:
            try:
                pruned = await pruning_beside(big, repeat, (repeat + 1) * EVENTS)
            except Exception as exc:  # the other parts' numbers still count
                console.print_exception()
                pruned = {"error": f"{type(exc).__name__}: {exc}"}
    e, f = _side(empty_runs), _side(filled_runs)
    return {
        "pruning": pruned,
        "history_rows": history.total,
        "history_rows_per_table": history.rows,
        "history_events": history.events,
        "history_fill_seconds": history.seconds,
        "history_rows_per_second": round(history.total / history.seconds),
        "history_spread_days": history.days,
        "linked_users": LINKED,
        "events_per_run": EVENTS,
        "repeat": repeat,
        "empty_events_per_s": e["events_per_s"],
        "filled_events_per_s": f["events_per_s"],
        "ratio": round(f["events_per_s"] / e["events_per_s"], 3),
        "ratio_per_run": [
            round(b / a, 3)
            for a, b in zip(e["runs_events_per_s"], f["runs_events_per_s"], strict=True)
        ],
        "empty_cpu_ms_per_event": e["cpu_ms_per_event"],
        "filled_cpu_ms_per_event": f["cpu_ms_per_event"],
        "cpu_ratio": round(f["cpu_ms_per_event"] / e["cpu_ms_per_event"], 3),
        "empty": e,
        "filled": f,
        "target": "ratio >= 0.9",
        "measured": "medians of the notifier bench's throughput procedure, empty and filled "
        "alternately in one run; ratio = filled / empty events per second",
        "hot_statements_ms": {
            name: {"empty": empty_plans[name]["ms"], "filled": plans[name]["ms"]} for name in HOT
        },
        "plans_filled": plans,
    }


async def pruning_beside(s: Servers, repeat: int, offset: int) -> dict[str, Any]:
    """On the filled database, `repeat` times: the latency procedure without, then with the
    prune running; the throughput procedure without, then with it. Medians."""
    state: dict[str, Any] = {}
    runs: dict[str, list[Any]] = {"latency": [], "latency_pruning": [], "throughput": []}
    runs |= {"throughput_pruning": [], "prune_latency": [], "prune_throughput": []}
    for n in range(min(repeat, 2)):
        runs["latency"].append(await notifier_bench.latency(users=SENDERS, on=s))
        result, pruned = await while_pruning(
            s.database_url, notifier_bench.latency(users=SENDERS, on=s), state
        )
        runs["latency_pruning"].append(result)
        runs["prune_latency"].append(pruned)
        runs["throughput"].append(await _run(s, EVENTS, offset + 2 * n * EVENTS))
        result, pruned = await while_pruning(
            s.database_url, _run(s, EVENTS, offset + (2 * n + 1) * EVENTS), state
        )
        runs["throughput_pruning"].append(result)
        runs["prune_throughput"].append(pruned)
        console.print(
            f"pruning {n + 1}: p99 {runs['latency'][-1]['p99_ms']} -> "
            f"{runs['latency_pruning'][-1]['p99_ms']} ms, "
            f"{runs['throughput'][-1]['events_per_second']} -> {result['events_per_second']}/s, "
            f"prune {pruned['rows_per_s']} rows/s"
        )

    def median(key: str, field: str) -> float:
        return round(statistics.median(r[field] for r in runs[key] if r[field] is not None), 2)

    return {
        "p99_ms_without": median("latency", "p99_ms"),
        "p99_ms_while_pruning": median("latency_pruning", "p99_ms"),
        "p50_ms_without": median("latency", "p50_ms"),
        "p50_ms_while_pruning": median("latency_pruning", "p50_ms"),
        "events_per_s_without": median("throughput", "events_per_second"),
        "events_per_s_while_pruning": median("throughput_pruning", "events_per_second"),
        "prune_rows_per_s_at_full_speed": median("prune_throughput", "rows_per_s"),
        "prune_rows_per_s_at_100_events_per_s": median("prune_latency", "rows_per_s"),
        "runs": runs,
        "measured": "latency: publish -> sendMessage at 100 events/s (bench/notifier_bench.py); "
        "throughput: its full-speed procedure with the mix; prune: rows deleted / seconds "
        "pruning, hour after hour of history expired (bench/pruning.py); medians",
    }


_BATCH = "SELECT gen_random_uuid() AS e, 'bench-' || g AS u FROM generate_series(1, 200) g"
HOT = {
    "processed lookup (200 ids)": "SELECT event_id FROM processed_events WHERE event_id = ANY("
    "ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 200)))",
    "daily aggregation (200 users)": "SELECT a.user_id, a.type, count(*) FROM activity a "
    "JOIN unnest(ARRAY(SELECT 'bench-' || g FROM generate_series(1, 200) g)) AS v(u) "
    "ON a.user_id = v.u AND a.occurred_at >= now() - interval '1 day' AND a.occurred_at < now() "
    "WHERE a.type IN ('post_success', 'post_failure') GROUP BY 1, 2",
    "insert 200 processed_events": "INSERT INTO processed_events (event_id, type, user_id, "
    f"received_at) SELECT e, 'post_success', u, now() FROM ({_BATCH}) v",
    "insert 200 deliveries": "INSERT INTO deliveries (dedupe_key, event_id, event_type, user_id, "
    "status, attempts, created_at, updated_at) SELECT e::text, e, 'post_success', u, 'sending', "
    f"0, now(), now() FROM ({_BATCH}) v ON CONFLICT (dedupe_key) DO NOTHING",
    "update the status of the 200 newest deliveries": "UPDATE deliveries SET status = 'failed', "
    "updated_at = now(), attempts = 2 WHERE id IN (SELECT id FROM deliveries ORDER BY id DESC "
    "LIMIT 200)",
    "insert 200 activity": "INSERT INTO activity (event_id, user_id, type, occurred_at, "
    "platform, likes, comments, details, post_id) SELECT e, u, 'post_success', now(), "
    f"'instagram', 1, 2, '{{}}', 'p-' || e FROM ({_BATCH}) v",
}
"""The hot path's reads and writes as the notifier batches them (its statements take arrays;
these make their own), each EXPLAIN ANALYZEd with BUFFERS in a transaction rolled back."""


async def hot_plans(database_url: str) -> dict[str, Any]:
    """Each HOT statement's plan and execution time (ms) on this database; changes nothing."""
    out: dict[str, Any] = {}
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        for name, statement in HOT.items():
            async with conn.transaction(force_rollback=True):
                cursor = await conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {statement}")
                plan = [row[0] for row in await cursor.fetchall()]
            out[name] = {"ms": float(plan[-1].split()[-2]), "plan": plan}
    return out


async def size(events: int = HOUR) -> dict[str, Any]:
    """Bytes per delivered event, from an hour of traffic at EVENTS_PER_DAY into an empty
    database; the steady state projected under retention."""
    with servers() as s:
        await seed_links(s.database_url, LINKED)
        before = await table_bytes(s.database_url)
        run = await _run(s, events, 0)
        after = await table_bytes(s.database_url)
        rows = await row_counts(s.database_url)
    per_event = {t: round((after[t] - before[t]) / events, 1) for t in HISTORY_TABLES}
    steady = {t: per_event[t] * EVENTS_PER_DAY * RETENTION_DAYS[t] for t in HISTORY_TABLES}
    return {
        "events": events,
        "events_per_day": EVENTS_PER_DAY,
        "traffic": f"{events:,} events = {events / (EVENTS_PER_DAY / 24) * 60:.0f} minutes at "
        f"{EVENTS_PER_DAY:,} events/day",
        "rows_per_event": {t: round(rows[t] / events, 3) for t in HISTORY_TABLES},
        "bytes_per_event": per_event,
        "bytes_per_event_total": round(sum(per_event.values()), 1),
        "retention_days": RETENTION_DAYS,
        "steady_state_bytes": {t: round(v) for t, v in steady.items()},
        "steady_state_gb": round(sum(steady.values()) / 1e9, 1),
        "formula": "sum over tables of bytes_per_event x events_per_day x retention_days",
        "throughput_events_per_s": run["events_per_second"],
        "measured": "pg_total_relation_size (heap, indexes, TOAST; all partitions) after - "
        "before the run, over the events delivered; dead row versions of the updates "
        "(sending -> sent) included, as autovacuum only reuses their space",
    }


PARTS = {"filled": filled, "size": size}


async def main(parts: list[str]) -> dict[str, Any]:
    """Run the chosen parts; write bench/results/history.json."""
    # A part run alone keeps the others' last results (each part compares within itself).
    result: dict[str, Any] = {
        k: v for k, v in load("history").items() if k not in ("benchmark", "machine", "measured_at")
    }
    started = time.monotonic()
    for name in parts:
        if name == "filled" and ROWS == 0:
            continue
        console.print(f"[bold]history {name}[/bold]")
        part = await PARTS[name]()  # type: ignore[operator]
        result.update(part) if name == "filled" else result.update({name: part})
        console.print({k: v for k, v in part.items() if k != "plans_filled"})
    result["seconds"] = round(time.monotonic() - started, 1)
    write_result("history", result)
    return result


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    asyncio.run(main(sys.argv[1:] or list(PARTS)))
