"""Prometheus metrics of the scheduler (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TRIGGERS_RECORDED = Counter(
    "scheduler_triggers_recorded_total", "Summary triggers recorded before publishing", ["kind"]
)
TRIGGERS_EMITTED = Counter(
    "scheduler_triggers_emitted_total", "Summary triggers confirmed by the broker", ["kind"]
)
TRIGGERS_FAILED = Counter(
    "scheduler_triggers_failed_total",
    "Summary trigger publishes that failed (the trigger stays pending and is retried)",
    ["kind"],
)
TRIGGERS_SKIPPED = Counter(
    "scheduler_triggers_skipped_total",
    "Scheduled triggers not emitted: due longer ago than SUMMARY_CATCH_UP_HOURS",
    ["reason"],
)
UNPUBLISHED = Gauge(
    "scheduler_unpublished_triggers",
    "Recorded triggers still waiting for a broker confirm, within the catch-up grace",
)
TICKS = Counter("scheduler_ticks_total", "Scheduler ticks", ["outcome"])
TICK_SECONDS = Histogram(
    "scheduler_tick_duration_seconds",
    "Time of one scheduler tick (sync, record, publish)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
TRIGGER_LAG = Histogram(
    "scheduler_trigger_lag_seconds",
    "From a trigger's due time to the broker confirming it (how late a daily report left)",
    ["kind"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)
LAST_TICK = Gauge(
    "scheduler_last_tick_timestamp_seconds",
    "When the last tick finished without error (Unix time): the alert on late summaries "
    "compares it with now",
)
for _kind in ("scheduled", "resend"):  # exported from the start: a quiet day is 0, not missing
    TRIGGER_LAG.labels(_kind)
PRUNED_ROWS = Counter(
    "scheduler_pruned_rows_total", "Rows deleted by data retention, per table", ["table"]
)
PRUNED_BYTES = Counter(
    "scheduler_pruned_bytes_total",
    "Bytes of row data deleted by data retention (pg_column_size, without index entries)",
    ["table"],
)
PRUNE_RUNS = Counter(
    "scheduler_prune_runs_total",
    "Retention slots reached by this replica: ok, error, or claimed_elsewhere (another replica's)",
    ["outcome"],
)
PRUNE_SECONDS = Histogram(
    "scheduler_prune_duration_seconds",
    "Time of one retention run (every table)",
    buckets=(0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)
