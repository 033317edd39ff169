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

INDEXES = (
    # (index, table, column): what each table is pruned by
    ("ix_processed_events_received_at", "processed_events", "received_at"),
    ("ix_deliveries_created_at", "deliveries", "created_at"),
    ("ix_activity_recorded_at", "activity", "recorded_at"),
    ("ix_link_tokens_expires_at", "link_tokens", "expires_at"),
    ("ix_rate_limits_tat", "rate_limits", "tat"),
    ("ix_summary_runs_due_at", "summary_runs", "due_at"),
)


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
    for name, table, column in INDEXES:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})")
    # Owner: scheduler. The schedule slot a retention run belongs to: one run per slot, however
    # many replicas (NULL for the other jobs' runs, which never conflict).
    op.add_column("job_runs", sa.Column("slot", sa.DateTime(timezone=True), nullable=True))
    op.create_unique_constraint("uq_job_runs_job_slot", "job_runs", ["job_id", "slot"])


def downgrade() -> None:
    op.drop_constraint("uq_job_runs_job_slot", "job_runs", type_="unique")
    op.drop_column("job_runs", "slot")
    for name, _, _ in INDEXES:
        op.drop_index(name)
    op.drop_column("activity", "recorded_at")
