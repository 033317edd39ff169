"""the delivery log: what each delivery said and why, Telegram's refusals, button presses

Revision ID: 0006
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Owner: notifier. What the delivery log shows of each delivery: when the event happened, a
    # short preview of the message, why nothing was sent (`reason`), the dead-letter reason when
    # its RabbitMQ message went to the DLQ, and when the request was last handed to Telegram
    # (`handed_at` is cleared once the answer is recorded; this one is kept).
    op.add_column("deliveries", sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("deliveries", sa.Column("preview", sa.Text(), nullable=True))
    op.add_column("deliveries", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("deliveries", sa.Column("dead_letter", sa.String(length=32), nullable=True))
    op.add_column(
        "deliveries", sa.Column("handed_over_at", sa.DateTime(timezone=True), nullable=True)
    )
    # The user's log, newest first, page by page: (user_id, id) replaces the index on user_id.
    op.drop_index("ix_deliveries_user_id", table_name="deliveries")
    op.create_index("ix_deliveries_user_log", "deliveries", ["user_id", "id"])
    # Owner: notifier. Each attempt Telegram refused (a success is the delivery row itself).
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failure", sa.String(length=32), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("retry_after", sa.Float(), nullable=True),
    )
    op.create_index("ix_delivery_attempts_event_id", "delivery_attempts", ["event_id"])
    op.create_index("ix_delivery_attempts_at", "delivery_attempts", ["at"])  # retention
    # Owner: linker. The presses of a notification's buttons (Retry, Mute) and their outcome.
    op.create_table(
        "button_presses",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("pressed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_button_presses_event_id", "button_presses", ["event_id"])
    op.create_index("ix_button_presses_pressed_at", "button_presses", ["pressed_at"])  # retention


def downgrade() -> None:
    op.drop_table("button_presses")  # with its indexes
    op.drop_table("delivery_attempts")
    op.drop_index("ix_deliveries_user_log", table_name="deliveries")
    op.create_index("ix_deliveries_user_id", "deliveries", ["user_id"])
    for column in ("handed_over_at", "dead_letter", "reason", "preview", "occurred_at"):
        op.drop_column("deliveries", column)
