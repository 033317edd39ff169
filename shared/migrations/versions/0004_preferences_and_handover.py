"""preferences (quiet hours), request hand-over marks, held deliveries, post ids on activity

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Owner: linker. Quiet hours in the user's own time zone; both set or both null.
    op.add_column("telegram_links", sa.Column("quiet_start", sa.Time(), nullable=True))
    op.add_column("telegram_links", sa.Column("quiet_end", sa.Time(), nullable=True))
    # Owner: notifier. `handed_at`: the sendMessage request was written to Telegram's connection
    # (a restart must not resend it blindly); `release_at`: a `held` delivery (quiet hours) goes
    # out then; `payload`: what a held delivery will send (text, buttons).
    op.add_column("deliveries", sa.Column("handed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("deliveries", sa.Column("release_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "deliveries",
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.create_index(
        "ix_deliveries_held_release",
        "deliveries",
        ["release_at"],
        postgresql_where=sa.text("status = 'held'"),
    )
    # Owner: notifier. The platform's post id, so a metrics update finds the post's message.
    op.add_column("activity", sa.Column("post_id", sa.String(length=200), nullable=True))
    op.create_index("ix_activity_user_post", "activity", ["user_id", "post_id"])


def downgrade() -> None:
    op.drop_index("ix_activity_user_post", table_name="activity")
    op.drop_column("activity", "post_id")
    op.drop_index("ix_deliveries_held_release", table_name="deliveries")
    op.drop_column("deliveries", "payload")
    op.drop_column("deliveries", "release_at")
    op.drop_column("deliveries", "handed_at")
    op.drop_column("telegram_links", "quiet_end")
    op.drop_column("telegram_links", "quiet_start")
