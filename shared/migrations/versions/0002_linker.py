"""linker: rate-limit state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 20:00:00.000000

`rate_limits` holds one GCRA timestamp per limited key (e.g. `test_message:<user_id>`), so a limit
holds across every linker replica. Owner: linker.
"""

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("tat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
