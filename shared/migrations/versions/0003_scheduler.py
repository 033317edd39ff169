"""scheduler: per-user schedule with the next due instant; the zone of each summary run

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Owner: scheduler. One row per linked, enabled user: the settings the pending trigger was
    # computed with, the local day it summarises and when it is due. The due query is an index
    # range scan on due_at, however many users there are.
    op.create_table(
        "summary_schedules",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("summary_time", sa.Time(), nullable=False),
        sa.Column("summary_date", sa.Date(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_index("ix_summary_schedules_due_at", "summary_schedules", ["due_at"])
    # The zone the summary date was computed in, so the notifier aggregates the right day even
    # if the user changes zone between recording and publishing.
    op.add_column(
        "summary_runs",
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("summary_runs", "timezone")
    op.drop_index("ix_summary_schedules_due_at", table_name="summary_schedules")
    op.drop_table("summary_schedules")
