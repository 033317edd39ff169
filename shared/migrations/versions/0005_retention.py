"""data lifecycle: an index on the time every pruned table is pruned by; activity's recorded_at;
one retention run per job and slot

Revision ID: 0005
Revises: 0004

Every table that grows with traffic is pruned in small batches by the scheduler
(`services/scheduler/retention.py`), each batch an index range scan on the column below, so a
prune never reads a whole table. Converts a database in place: one column added with a constant
default (no table rewrite) and plain indexes. On a very large database, build the indexes first
with `CREATE INDEX CONCURRENTLY IF NOT EXISTS` (docs/operations.md, "Data retention"): this
migration then finds them and skips them.
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PRUNED_BY = {
    # table: the column it is pruned by (index ix_<table>_<column>)
    "processed_events": "received_at", "deliveries": "created_at", "activity": "recorded_at",
    "link_tokens": "expires_at", "rate_limits": "tat", "summary_runs": "due_at",
}  # fmt: skip


def upgrade() -> None:
    # Owner: notifier. When the row was written (server time): activity is kept for a number of
    # days after it was recorded, whatever `occurred_at` the publisher sent (any date from 2000
    # to 2999). Rows already there count as recorded now: a constant default, no rewrite.
    op.add_column(
        "activity",
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    for table, column in PRUNED_BY.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS ix_{table}_{column} ON {table} ({column})")
    # Owner: scheduler. The schedule slot a retention run belongs to: one run per slot, however
    # many replicas (NULL for the other jobs' runs, which never conflict).
    op.add_column("job_runs", sa.Column("slot", sa.DateTime(timezone=True), nullable=True))
    op.create_unique_constraint("uq_job_runs_job_slot", "job_runs", ["job_id", "slot"])


def downgrade() -> None:
    op.drop_constraint("uq_job_runs_job_slot", "job_runs", type_="unique")
    op.drop_column("job_runs", "slot")
    for table, column in PRUNED_BY.items():
        op.drop_index(f"ix_{table}_{column}", table_name=table)
    op.drop_column("activity", "recorded_at")
